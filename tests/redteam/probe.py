# SPDX-License-Identifier: Apache-2.0
"""Syscall probes for the red-team suite, run by the "model" inside the exec sandbox (and by the
test itself outside it, as the control). Stdlib only (python3 from the read-only /usr).

Each probe runs in a forked child, so a seccomp kill takes only that child; one line per probe:
  NAME result R | NAME errno E | NAME error TEXT | NAME signal S   (31 = SIGSYS: seccomp kill)

Usage: probe.py kernel | net PORT | tty | abstract NAME
"""
import ctypes
import mmap
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def run(name, fn):
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            line = "%s result %s\n" % (name, fn())
        except OSError as e:
            line = "%s errno %s\n" % (name, e.errno)
        except Exception as e:  # noqa: BLE001
            line = "%s error %r\n" % (name, e)
        os.write(1, line.encode())
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        print("%s signal %d" % (name, os.WTERMSIG(status)), flush=True)


def sc(nr, *args):
    def call():
        buf = ctypes.create_string_buffer(64)
        real = [ctypes.addressof(buf) if a == "BUF" else a for a in args]
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in real])
        if r < 0:
            raise OSError(ctypes.get_errno(), "syscall %d" % nr)
        return r
    return call


def machine_code(code):
    def call():
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        m.write(code)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        return ctypes.CFUNCTYPE(ctypes.c_long)(addr)()
    return call


def kernel():
    run("control_getpid", sc(39))
    run("control_syscall_insn_getpid", machine_code(b"\xb8\x27\x00\x00\x00\x0f\x05\xc3"))
    run("unshare_newuser", sc(272, 0x10000000))
    run("clone_newuser", sc(56, 0x10000000 | 17, 0, 0, 0, 0))
    run("setns", sc(308, 0, 0))
    run("mount", sc(165, 0, 0, 0, 0, 0))
    run("keyctl", sc(250, 0, -3, 0))
    run("add_key", sc(248, 0, 0, 0, 0, 0))
    run("bpf", sc(321, 0, 0, 0))
    run("perf_event_open", sc(298, 0, 0, -1, -1, 0))
    run("userfaultfd", sc(323, 0))
    run("io_uring_setup", sc(425, 1, 0))
    run("personality", sc(135, 0xffffffff))
    run("modify_ldt", sc(154, 0, 0, 0))
    run("ptrace_attach_1", sc(101, 16, 1, 0, 0))
    run("process_vm_readv", sc(310, 1, 0, 0, 0, 0, 0))
    run("x32_getpid", sc(0x40000000 + 39))
    # mov eax, 20 (getpid in the i386 table); int 0x80; ret
    run("i386_int80_getpid", machine_code(b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"))


def net(port):
    def connect(family, kind, addr):
        def call():
            s = socket.socket(family, kind)
            s.settimeout(2)
            s.connect(addr)
            return "connected"
        return call

    def udp(addr):
        def call():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            return s.sendto(b"exfil", addr)
        return call

    run("control_unix_socketpair", lambda: len(socket.socketpair()))
    run("tcp_gateway", connect(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", port)))
    run("tcp_loopback_other", connect(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.2", port)))
    run("tcp_metadata", connect(socket.AF_INET, socket.SOCK_STREAM, ("169.254.169.254", 80)))
    run("tcp_private_10", connect(socket.AF_INET, socket.SOCK_STREAM, ("10.0.0.1", 80)))
    run("tcp_private_192", connect(socket.AF_INET, socket.SOCK_STREAM, ("192.168.1.1", 80)))
    run("udp_dns", udp(("1.1.1.1", 53)))
    run("tcp6_loopback", connect(socket.AF_INET6, socket.SOCK_STREAM, ("::1", port)))
    run("dns_lookup", lambda: socket.getaddrinfo("example.com", 80))
    run("raw_icmp", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1).fileno())
    run("packet", lambda: socket.socket(17, socket.SOCK_RAW, 0).fileno())
    run("netlink", lambda: socket.socket(16, socket.SOCK_RAW, 0).fileno())


def tty():
    run("control_tcgets", sc(16, 1, 0x5401, "BUF"))
    run("tiocsti_stdout", sc(16, 1, 0x5412, "BUF"))
    run("tiocsti_stdin", sc(16, 0, 0x5412, "BUF"))
    run("tioclinux", sc(16, 1, 0x541C, "BUF"))
    run("open_dev_tty", lambda: os.open("/dev/tty", os.O_RDWR))


def abstract(name):
    def call():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(b"\0" + name.encode())
        return "connected"
    run("abstract_unix", call)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "kernel":
        kernel()
    elif what == "net":
        net(int(sys.argv[2]))
    elif what == "tty":
        tty()
    elif what == "abstract":
        abstract(sys.argv[2])
    print("probe done", flush=True)
