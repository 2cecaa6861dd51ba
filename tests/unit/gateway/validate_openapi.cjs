// Validates an OpenAPI document with @apidevtools/swagger-parser (schema and
// $refs), installed pinned under .deps/node by scripts/install-deps.
// usage: node validate_openapi.cjs NODE_DIR openapi.json
const { createRequire } = require('module');
const path = require('path');
const req = createRequire(path.join(process.argv[2], 'package.json'));
const SwaggerParser = req('@apidevtools/swagger-parser');
SwaggerParser.validate(process.argv[3]).then(
  (api) => { console.log('valid: ' + api.info.title + ', ' + Object.keys(api.paths).length + ' paths'); },
  (err) => { console.error('invalid: ' + err.message); process.exit(1); });
