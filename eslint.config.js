// neostandard: the Fastify ecosystem's style (standard, for ESLint 9 and TypeScript). `npm run lint` runs it.
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: [...resolveIgnoresFromGitignore(), 'openapi/**'],
  }),
  {
    rules: {
      // `void promise` marks a deliberate fire-and-forget (its failure is handled where it is made).
      'no-void': ['error', { allowAsStatement: true }],
      // Every wait loop here watches a flag that a callback sets (a socket's 'close', a server's answer); the rule
      // cannot see callbacks and flags each of them.
      'no-unmodified-loop-condition': 'off',
      // Lines stay readable side by side; prose in strings, URLs and patterns may run longer.
      '@stylistic/max-len': ['error', { code: 160, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true }],
    },
  },
]
