import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.chronicle/', 'scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
  // The console: plain browser ES modules served as they are (docs/adr/0008), outside the TS project.
  { files: ['console/**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['console/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'AbortController',
          'addEventListener',
          'clearInterval',
          'clearTimeout',
          'document',
          'Element',
          // (no EventSource: it cannot send the API token in a header; lib/event-stream.js reads streams)
          'fetch',
          'history',
          'location',
          'removeEventListener',
          'ResizeObserver',
          'setInterval',
          'sessionStorage',
          'setTimeout',
          'TextDecoderStream',
          'TextEncoder',
          'URL',
          'URLSearchParams',
          'window',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
);
