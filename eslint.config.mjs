// ESLint for the whole repository: the TypeScript in src/, test/, bench/ and lab/
// (type-aware, through the TypeScript project service and tsconfig.json), and
// the plain CommonJS in bin/ and scripts/. `npm run lint` runs it; layout is
// Prettier's business (see docs/development.md), so no rule here is about
// formatting. Every deviation from the recommended sets says why.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import limits from './scripts/size-limits.js';

const TS = ['**/*.ts'];

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', '.tap/', 'coverage/'] },

  {
    linterOptions: {
      // An `eslint-disable` comment that no longer suppresses anything is an
      // error, so the ones in the tree stay meaningful.
      reportUnusedDisableDirectives: 'error',
    },
  },

  // ESLint's own recommended rules apply to every file, TypeScript included.
  js.configs.recommended,

  // Plain JavaScript: bin/ launchers, scripts/ (run-tests.js and friends) and
  // the .cjs/.mjs config files. CommonJS on Node.
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module', globals: globals.node },
  },

  // TypeScript: typescript-eslint's recommended set with the rules that need
  // type information. A lint of the whole tree costs about 30 s of CPU on the
  // two-core machine (docs/development.md has the measurement), and these are
  // the rules that catch what tsc does not: promises nobody awaits, `${}` of
  // an object, assertions that assert nothing.
  ...tseslint.configs.recommendedTypeChecked.map((c) => ({ ...c, files: TS })),
  {
    files: TS,
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // The protocol code compares bytes read from the wire (plain numbers)
      // with the members of its const enums (AtaOpcode, ConfigCommand, ...).
      // That comparison is the point of the enums: they name wire values and
      // compile away on the hot path. Converting every byte to the enum type
      // first would be a cast that proves nothing.
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
      // Recommended, plus the usual convention: a leading underscore marks a
      // parameter or binding kept on purpose (a callback's signature, a
      // destructured field left out).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
        },
      ],
    },
  },

  // The size limits of shipped code (scripts/size-limits.js has the numbers;
  // scripts/check-structure.js checks classes and folders). Lines as an
  // editor counts them: a long comment makes a file long too.
  {
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: limits.fileLines, skipBlankLines: false, skipComments: false }],
      'max-lines-per-function': ['error', { max: limits.functionLines, skipBlankLines: false, skipComments: false, IIFEs: true }],
    },
  },

  // Tests are tap files.
  {
    files: ['test/**/*.ts'],
    rules: {
      // tap queues `t.test(...)` subtests itself and runs them in order; the
      // promise it returns (PromiseWithSubtest) is there for those who want
      // it, and not awaiting it is tap's documented style. Every other
      // promise in a test must still be awaited or handled.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }],
        },
      ],
      // tap ends a subtest when the promise its callback returns settles, so
      // an `async (t) => { ... }` callback without an await is harmless, and
      // keeping every callback async lets an await be added without touching
      // the signature.
      '@typescript-eslint/require-await': 'off',
    },
  },
);
