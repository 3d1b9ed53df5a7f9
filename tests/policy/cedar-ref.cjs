// SPDX-License-Identifier: Apache-2.0
// The reference side of the differential test: authorizes JSON-line requests with the real
// Cedar (npm @cedar-policy/cedar-wasm) and prints one JSON line per request, in the same shape
// as supervisor/policy/policy-batch.
// Runs in: test
//
// Usage: node cedar-ref.cjs NODE_MODULES_DIR < lines
// Input line: {"policies": {"<id>": "<policy text>"}, "entities": [...], "requests": [...]}:
//   one answer per request; or {"op": "check", "policies": "<text>"}: does it parse, {"ok":
//   true} or {"error"}; or {"op": "entities", "entities": [...]}: is it a valid store.
// Exits 3 if the reference cannot be loaded (the test must fail, not skip).
'use strict';
const readline = require('readline');

const cedar = require('./load-reference.cjs')(process.argv[2]);

const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
const out = [];
rl.on('line', (text) => {
  if (!text.trim()) return;
  const line = JSON.parse(text);
  if (line.op === 'check' || line.op === 'entities') {
    const answer = line.op === 'check' ? cedar.checkParsePolicySet({staticPolicies: line.policies})
                                       : cedar.checkParseEntities({entities: line.entities});
    out.push(JSON.stringify(answer.type === 'success' ? {ok: true}
                            : {error: answer.errors.map((e) => e.message).join('; ')}));
    return;
  }
  for (const r of line.requests) {
    const answer = cedar.isAuthorized({
      principal: r.principal,
      action: r.action,
      resource: r.resource,
      context: r.context || {},
      policies: {staticPolicies: line.policies},
      entities: line.entities || [],
    });
    if (answer.type !== 'success') {
      out.push(JSON.stringify({error: answer.errors.map((e) => e.message).join('; ')}));
      continue;
    }
    const d = answer.response;
    out.push(JSON.stringify({
      decision: d.decision,
      determining: d.diagnostics.reason,
      errors: d.diagnostics.errors.length,
      errorMessages: d.diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
    }));
  }
});
rl.on('close', () => {
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
  console.error(`reference: cedar ${cedar.getCedarVersion()}`);
});
