#!/usr/bin/env node
// Development entry point: runs the bundle that `npm install` (the prepare script) builds.
const path = require('node:path');
const fs = require('node:fs');
const bundle = path.join(__dirname, '..', 'dist', 'herd.cjs');
if (!fs.existsSync(bundle)) {
  console.error(`herd: ${bundle} is missing; run "npm install" (or "npm run bundle") in ${path.dirname(__dirname)} first`);
  process.exit(1);
}
require(bundle);
