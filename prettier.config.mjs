// Prettier, set to the style the code was already written in, so that the
// one reformatting commit is as small as it can be. printWidth 130 changed
// the fewest lines of the widths measured (100, 120, 130): docs/development.md
// has the numbers. The rest are Prettier's defaults, spelled out.
export default {
  printWidth: 130,
  tabWidth: 2,
  useTabs: false,
  semi: true,
  singleQuote: true,
  trailingComma: 'all',
  arrowParens: 'always',
  endOfLine: 'lf',
};
