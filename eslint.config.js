import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Branded ids are minted by their constructors (serviceName, ruleId, spiffeId
// and their guards), which validate; a cast would skip the check (#17).
const BRANDED = '/^(ServiceName|RuleId|SpiffeId)$/';
const BRAND_CASTS = [
  {
    selector: `TSAsExpression TSTypeReference[typeName.name=${BRANDED}]`,
    message:
      'Mint a branded id with its constructor (serviceName, ruleId, spiffeId) or narrow it with its guard; do not cast.',
  },
  {
    selector: `TSTypeAssertion TSTypeReference[typeName.name=${BRANDED}]`,
    message:
      'Mint a branded id with its constructor (serviceName, ruleId, spiffeId) or narrow it with its guard; do not cast.',
  },
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'bench/results/',
      'coverage/',
      'test/fixtures/',
      'dist/',
      'bench/.build/',
      '.baton-dev/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        structuredClone: 'readonly',
        performance: 'readonly',
        setImmediate: 'readonly',
        fetch: 'readonly',
        queueMicrotask: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // Type-aware rules (typescript-eslint's project service reads tsconfig.json):
    // a promise nobody awaits or handles loses its rejection, and one passed
    // where a callback's result is ignored (an event handler, a forEach) does too.
    // An intended fire-and-forget is written `void promise`, with its errors handled.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/it/test return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-restricted-syntax': ['error', ...BRAND_CASTS] },
  },
  {
    // One home per symbol (#17): src/ never re-exports. An importer names the
    // module that declares the symbol, so moving or renaming it is one edit
    // that the compiler checks, not a chain of aliases.
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ExportAllDeclaration',
          message: 'No re-exports in src/: import the symbol from the module that declares it.',
        },
        {
          selector: 'ExportNamedDeclaration[source]',
          message: 'No re-exports in src/: import the symbol from the module that declares it.',
        },
        {
          selector: 'ExportNamedDeclaration[declaration=null][source=null]',
          message: "No export lists in src/: write 'export' on the declaration, so each symbol has one home.",
        },
        ...BRAND_CASTS,
      ],
    },
  },
);
