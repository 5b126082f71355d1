/** Reading the environment with zod: what every variable schema shares. */
import { z } from 'zod'

/**
 * An optional variable where set-but-empty means unset: compose files and `.env` templates write `NAME=` for "not
 * configured", and that must read as absent, not as an empty (and so invalid) value.
 */
export const optionalEnv = <T extends z.ZodType>(schema: T) => z.preprocess(v => (v === '' ? undefined : v), schema.optional())
