// The size limits of src/, in one place: eslint.config.mjs reads the file and
// function limits (max-lines, max-lines-per-function), and
// scripts/check-structure.js the class and folder limits that ESLint has no
// rule for. Lines are counted as an editor shows them, blank lines and
// comments included.
'use strict';

module.exports = {
  /** Lines of one src/ file. */
  fileLines: 700,
  /** Lines of one function or method, its signature and closing brace included. */
  functionLines: 120,
  /** Lines of one class, from `class` to its closing brace. */
  classLines: 500,
  /** Modules (.ts files) directly in one src/ folder. */
  folderModules: 14,
};
