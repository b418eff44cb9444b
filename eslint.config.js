// Boundaries that a tool keeps (`npm run lint`, run by .ci/run): no floating promises, no import
// cycles, no reaching into another package's src/, dist/ or test/, services never import services,
// and tests share fakes only through @tidemark/testkit.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const root = fileURLToPath(new URL('.', import.meta.url));

// Read from services/*/package.json, so a new service is fenced in without editing this file.
const servicePackages = readdirSync(new URL('services/', import.meta.url), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => JSON.parse(readFileSync(new URL(`services/${entry.name}/package.json`, import.meta.url), 'utf8')).name);

const deepImports = {
  group: ['@tidemark/*/src', '@tidemark/*/src/**', '@tidemark/*/dist', '@tidemark/*/dist/**', '@tidemark/*/test', '@tidemark/*/test/**'],
  message: "Import the package's public entry point; shared test fakes live in @tidemark/testkit.",
};
const otherServices = {
  group: servicePackages.flatMap((name) => [name, `${name}/**`]),
  message: 'Services never import services (nor do libraries or the CLI): talk over NATS, or move the shared code into a lib.',
};

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'bench/out/**'] },
  {
    files: [
      'libs/*/src/**/*.ts',
      'libs/*/test/**/*.ts',
      'services/*/src/**/*.ts',
      'services/*/test/**/*.ts',
      'cli/src/**/*.ts',
      'cli/test/**/*.ts',
      'tests/**/*.ts',
    ],
    languageOptions: {
      parser: tseslint.parser,
      // One explicit program instead of projectService: tests belong to no package's tsconfig, and a
      // single program is several times faster than one per package.
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: root },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { '@typescript-eslint': tseslint.plugin, 'import-x': importX },
    settings: {
      // Without these, import-x skips every .ts dependency and no-cycle sees no graph at all.
      'import-x/extensions': ['.ts'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      // Maps the ESM `./x.js` specifiers to their `./x.ts` sources and @tidemark/* to the workspaces.
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.eslint.json', alwaysTryTypes: true })],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // A relative path that lands in another package (`../../libs/x/...`, `../../../libs/x/test/...`)
      // is found by resolving it, which is exact where path patterns can only guess.
      'import-x/no-relative-packages': 'error',
      'no-restricted-imports': ['error', { patterns: [deepImports] }],
    },
  },
  {
    files: ['libs/**/*.ts', 'services/**/*.ts', 'cli/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [deepImports, otherServices] }],
    },
  },
);
