// For the native Prisma CLI (`prisma migrate deploy`, `prisma migrate status`, `prisma studio`): Prisma 7
// reads the database URL here, not from schema.prisma. The gateway itself never loads this file: it
// applies the same migrations folder with the wasm schema engine (src/db/migrate.ts).
// process.env rather than prisma's env(): env() throws when the variable is unset, and `prisma generate`
// (scripts/prisma-generate.mjs) loads this file too, without needing a database.
import { defineConfig } from 'prisma/config'

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL },
})
