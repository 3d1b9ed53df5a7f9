// SPDX-License-Identifier: Apache-2.0
// The reference side of one bench shape (tests/bench/bench.py): times one run of the real Cedar
// (npm @cedar-policy/cedar-wasm, the same install as the differential test) on the file that
// supervisor/policy/policy-bench --shape times, and prints the same line.
// Runs in: test
//
// Usage: node cedar-bench.cjs NODE_MODULES_DIR SHAPE.json
// One run: parse the policies once (preparsePolicySet, the reference's fastest path), then
// authorize every request; the store goes with each request, as the reference's API takes it.
'use strict';
const fs = require('fs');

const cedar = require('./load-reference.cjs')(process.argv[2]);
const shape = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

const t0 = process.hrtime.bigint();
const parsed = cedar.preparsePolicySet('shape', {staticPolicies: shape.policies});
if (parsed.type !== 'success') {
  console.error(JSON.stringify(parsed.errors));
  process.exit(2);
}
const load = ms(t0);
let decisions = '';
const t1 = process.hrtime.bigint();
for (const r of shape.requests) {
  const answer = cedar.statefulIsAuthorized({
    principal: r.principal, action: r.action, resource: r.resource, context: r.context,
    preparsedPolicySetId: 'shape', entities: shape.entities,
  });
  if (answer.type !== 'success') {
    console.error(JSON.stringify(answer.errors));
    process.exit(2);
  }
  decisions += answer.response.decision === 'allow' ? 'a' : 'd';
}
console.log(`shape load ${load.toFixed(3)} ms, ${decisions.length} requests ${ms(t1).toFixed(3)} ms, ` +
            `decisions ${decisions}`);
