// Where this package's files are. The commands run as CommonJS compiled into dist/ (its start is
// ~20 ms shorter than the same code as ES modules: doc/benchmarks.md); the tests load lib/*.ts as
// ES modules through a TypeScript loader. `import.meta` is not valid syntax in CommonJS, and
// `__dirname` is not defined in an ES module: only a CommonJS module knows its own path in both, so
// this one, plain JavaScript (its exports are then visible to an ES module that imports it by
// name), says it for every other. tsc copies it to dist/ (allowJs).
'use strict';

const { basename, join } = require('node:path');

/** The directory of the running code: lib/ (from source) or dist/ (built). @type {string} */
exports.CODE_DIR = __dirname;

/** The package's root, one up from either. @type {string} */
exports.ROOT = join(__dirname, '..');

/** True when running the TypeScript sources (the tests), false when running dist/. @type {boolean} */
exports.FROM_SOURCE = basename(__dirname) === 'lib';

/** `require`, resolving from this package: CommonJS libraries and the addon, loaded on first use. @type {NodeJS.Require} */
exports.load = require;
