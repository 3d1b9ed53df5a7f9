// SPDX-License-Identifier: Apache-2.0
// HTML to readable Markdown or text with libxml2's HTML parser (see extract.h).
// Runs in: worker (sandboxed)

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <libxml/uri.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <vector>

#include "extract.h"

namespace chitin::web {

namespace {

constexpr int MAX_DEPTH = 200;

bool named(const xmlNode* n, const char* name) {
  return n->type == XML_ELEMENT_NODE && xmlStrcasecmp(n->name, BAD_CAST name) == 0;
}

std::string attr(const xmlNode* n, const char* name) {
  xmlChar* v = xmlGetProp(n, BAD_CAST name);
  if (v == nullptr) return "";
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool isHidden(const xmlNode* n) {
  if (xmlHasProp(n, BAD_CAST "hidden") != nullptr) return true;
  if (lower(attr(n, "aria-hidden")) == "true") return true;
  std::string style = lower(attr(n, "style"));
  style.erase(std::remove_if(style.begin(), style.end(), ::isspace), style.end());
  return style.find("display:none") != std::string::npos ||
         style.find("visibility:hidden") != std::string::npos;
}

bool dropped(const xmlNode* n) {
  static const char* const DROP[] = {"script", "style",  "template", "noscript", "nav",
                                     "header", "footer", "aside",    "iframe",   "svg",
                                     "canvas", "button", "select",   "input",    "textarea",
                                     "head",   "object", "embed",    "form",     "dialog"};
  for (const char* name : DROP) {
    if (named(n, name)) return true;
  }
  return isHidden(n);
}

bool isBlock(const xmlNode* n) {
  static const char* const BLOCK[] = {
      "p",    "div",        "section", "article", "main",  "h1", "h2",     "h3",
      "h4",   "h5",         "h6",      "ul",      "ol",    "li", "pre",    "table",
      "tr",   "blockquote", "hr",      "dl",      "dt",    "dd", "figure", "figcaption",
      "body", "address",    "details", "summary", "center"};
  for (const char* name : BLOCK) {
    if (named(n, name)) return true;
  }
  return false;
}

class Renderer {
 public:
  Renderer(std::string base, bool markdown, uint32_t maxChars)
      : base_(std::move(base)), markdown_(markdown), maxBytes_(size_t(maxChars) * 4 + 16) {}

  void render(const xmlNode* n, int depth) {
    for (; n != nullptr && !full(); n = n->next) node(n, depth);
  }
  std::string take() {
    while (!out_.empty() && (out_.back() == '\n' || out_.back() == ' ')) out_.pop_back();
    return std::move(out_);
  }
  bool full() const { return out_.size() > maxBytes_; }

 private:
  void node(const xmlNode* n, int depth) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      return text(reinterpret_cast<const char*>(n->content));
    }
    if (n->type != XML_ELEMENT_NODE || dropped(n) || depth > MAX_DEPTH) return;
    std::string name = lower(reinterpret_cast<const char*>(n->name));
    if (name == "br") return newline();
    if (name == "hr") {
      block();
      raw(markdown_ ? "---" : "----");
      return block();
    }
    if (name.size() == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6') {
      block();
      if (markdown_) raw(std::string(name[1] - '0', '#') + " ");
      render(n->children, depth + 1);
      return block();
    }
    if (name == "pre") return pre(n);
    if (name == "a") return link(n, depth);
    if (name == "img") {
      std::string alt = attr(n, "alt");
      if (!alt.empty()) text(markdown_ ? "![" + alt + "]" : "[image: " + alt + "]");
      return;
    }
    if (name == "ul" || name == "ol") return list(n, depth, name == "ol");
    if (name == "blockquote") {
      block();
      prefixes_.push_back(markdown_ ? "> " : "  ");
      render(n->children, depth + 1);
      prefixes_.pop_back();
      return block();
    }
    if (name == "tr") {
      newline();
      bool first = true;
      for (const xmlNode* cell = n->children; cell != nullptr; cell = cell->next) {
        if (!named(cell, "td") && !named(cell, "th")) continue;
        if (dropped(cell)) continue;
        raw(first ? (markdown_ ? "| " : "") : (markdown_ ? " | " : "\t"));
        first = false;
        render(cell->children, depth + 1);
      }
      if (markdown_ && !first) raw(" |");
      return newline();
    }
    const char* mark = nullptr;
    if (markdown_ && (name == "strong" || name == "b")) mark = "**";
    if (markdown_ && (name == "em" || name == "i")) mark = "*";
    if (markdown_ && name == "code") mark = "`";
    bool blockish = isBlock(n);
    if (blockish) block();
    if (mark) inlineMark(mark);
    render(n->children, depth + 1);
    if (mark) inlineMark(mark);
    if (blockish) block();
  }

  void link(const xmlNode* n, int depth) {
    std::string href = absolute(attr(n, "href"));
    size_t start = out_.size();
    if (markdown_ && !href.empty()) inlineMark("[");
    render(n->children, depth + 1);
    bool empty = out_.size() <= start + 1;
    if (href.empty()) return;
    if (markdown_) {
      if (empty) raw(href);
      raw("](" + href + ")");
    } else if (empty) {
      text(href);
    } else {
      raw(" <" + href + ">");
    }
  }

  void list(const xmlNode* n, int depth, bool ordered) {
    block();
    int number = 1;
    prefixes_.push_back("  ");
    for (const xmlNode* item = n->children; item != nullptr && !full(); item = item->next) {
      if (!named(item, "li")) {
        node(item, depth + 1);
        continue;
      }
      if (dropped(item)) continue;
      newline();
      // The marker replaces the indentation of this item's first line.
      prefixes_.pop_back();
      startLine();
      raw(ordered ? std::to_string(number++) + ". " : (markdown_ ? "- " : "* "));
      prefixes_.push_back("  ");
      render(item->children, depth + 1);
    }
    prefixes_.pop_back();
    block();
  }

  void pre(const xmlNode* n) {
    block();
    xmlChar* content = xmlNodeGetContent(n);
    std::string code = content ? reinterpret_cast<const char*>(content) : "";
    if (content) xmlFree(content);
    while (!code.empty() && code.back() == '\n') code.pop_back();
    if (markdown_) raw("```\n");
    for (char c : code) {
      if (full()) break;
      if (c == '\n') {
        out_ += '\n';  // kept as is, blank lines too
        lineStart_ = true;
        startLine();
      } else {
        out_ += c;
      }
    }
    if (markdown_) {
      newline();
      startLine();
      raw("```");
    }
    block();
  }

  std::string absolute(const std::string& href) {
    if (href.empty() || href[0] == '#') return "";
    std::string l = lower(href.substr(0, 11));
    if (l.rfind("javascript:", 0) == 0 || l.rfind("data:", 0) == 0) return "";
    std::string escaped;
    for (char c : href) {
      if (c == ' ') {
        escaped += "%20";
      } else if (c != '\n' && c != '\r' && c != '\t') {
        escaped += c;
      }
    }
    xmlChar* built = xmlBuildURI(BAD_CAST escaped.c_str(), BAD_CAST base_.c_str());
    if (built == nullptr) return escaped.size() > 2000 ? "" : escaped;
    std::string out(reinterpret_cast<const char*>(built));
    xmlFree(built);
    for (char& c : out) {
      if (c == ' ' || c == ')' || c == '\n') c = '+';  // keep the Markdown link intact
    }
    return out.size() > 2000 ? "" : out;
  }

  // Text: whitespace collapsed to one space, none at the start of a line.
  void text(const std::string& t) {
    for (char c : t) {
      if (full()) return;
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        space_ = true;
        continue;
      }
      if (lineStart_) {
        startLine();
      } else if (space_) {
        out_ += ' ';
      }
      space_ = false;
      if (markdown_ && (c == '*' || c == '_' || c == '`' || c == '[' || c == ']')) out_ += '\\';
      out_ += c;
    }
  }
  void inlineMark(const char* mark) {
    if (lineStart_) startLine();
    if (space_ && !out_.empty() && out_.back() != ' ') out_ += ' ';
    space_ = false;
    out_ += mark;
  }
  void raw(const std::string& s) {
    if (lineStart_) startLine();
    space_ = false;
    out_ += s;
  }
  void startLine() {
    if (!lineStart_) return;
    lineStart_ = false;
    for (const auto& p : prefixes_) out_ += p;
  }
  void newline() {
    if (out_.empty() || lineStart_) return;
    out_ += '\n';
    lineStart_ = true;
    space_ = false;
  }
  // A blank line between blocks (never two).
  void block() {
    if (out_.empty()) return;
    if (!lineStart_) newline();
    if (out_.size() >= 2 && out_[out_.size() - 2] == '\n') return;
    out_ += '\n';
  }

  std::string base_;
  bool markdown_;
  size_t maxBytes_;
  std::string out_;
  std::vector<std::string> prefixes_;
  bool lineStart_ = true;
  bool space_ = false;
};

// The first element in document order for which `want` holds (iterative: no recursion on
// attacker-chosen depth).
template <typename Pred>
const xmlNode* findFirst(const xmlNode* root, Pred want, bool enterDropped = false) {
  const xmlNode* n = root;
  while (n != nullptr) {
    if (n->type == XML_ELEMENT_NODE && want(n)) return n;
    if (n->children != nullptr && n->type == XML_ELEMENT_NODE && (enterDropped || !dropped(n))) {
      n = n->children;
      continue;
    }
    while (n != nullptr && n->next == nullptr) {
      n = n->parent;
      if (n == root) return nullptr;
    }
    if (n != nullptr) n = n->next;
  }
  return nullptr;
}

}  // namespace

Extracted extractHtml(std::string_view html, const std::string& baseUrl, bool markdown,
                      uint32_t maxChars) {
  Extracted result;
  if (html.empty()) return result;
  int options = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET;
  htmlDocPtr doc =
      htmlReadMemory(html.data(), static_cast<int>(std::min<size_t>(html.size(), INT_MAX)), nullptr,
                     "UTF-8", options);
  if (doc == nullptr) return result;
  const xmlNode* root = xmlDocGetRootElement(doc);
  if (root != nullptr) {
    // <title> is in <head>, which the content walk drops: searched with dropped ones entered.
    const xmlNode* title = findFirst(
        root, [](const xmlNode* n) { return named(n, "title"); }, true);
    if (title != nullptr) {
      xmlChar* t = xmlNodeGetContent(title);
      std::string s = t ? reinterpret_cast<const char*>(t) : "";
      if (t) xmlFree(t);
      bool space = false;
      for (char c : s.substr(0, 4000)) {
        if (std::isspace(static_cast<unsigned char>(c))) {
          space = !result.title.empty();
        } else {
          if (space) result.title += ' ';
          space = false;
          result.title += c;
        }
      }
    }
    const xmlNode* main = findFirst(root, [](const xmlNode* n) {
      return named(n, "main") || lower(attr(n, "role")) == "main";
    });
    if (main == nullptr)
      main = findFirst(root, [](const xmlNode* n) { return named(n, "article"); });
    if (main == nullptr) main = findFirst(root, [](const xmlNode* n) { return named(n, "body"); });
    if (main == nullptr) main = root;
    Renderer r(baseUrl, markdown, maxChars);
    r.render(main->children, 1);
    result.truncated = r.full();
    result.text = r.take();
  }
  xmlFreeDoc(doc);
  return result;
}

}  // namespace chitin::web
