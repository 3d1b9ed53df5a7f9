// SPDX-License-Identifier: Apache-2.0
// Loads the reference Cedar (npm @cedar-policy/cedar-wasm) from a node_modules directory, for
// cedar-ref.cjs and cedar-bench.cjs. Exits 3 if it cannot be loaded: a test that needs the
// reference must fail, not skip.
// Runs in: test
'use strict';
const path = require('path');

module.exports = function loadReference(modulesDir) {
  try {
    return require(path.join(modulesDir, '@cedar-policy/cedar-wasm/nodejs'));
  } catch (e) {
    console.error(`cannot load @cedar-policy/cedar-wasm from ${modulesDir}: ${e.message}`);
    process.exit(3);
  }
};
