/** `npm run openapi`: writes openapi/openapi.json from the code. Commit the result. */
import { mkdir, writeFile } from 'node:fs/promises'
import { renderOpenApi } from '../src/openapi.js'

await mkdir('openapi', { recursive: true })
await writeFile('openapi/openapi.json', await renderOpenApi())
process.stdout.write('wrote openapi/openapi.json\n')
