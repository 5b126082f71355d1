/** Job ids are UUIDs: anything else in a path is refused (400) before the database sees it. */
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const isJobId = (id: string): boolean => uuidPattern.test(id)
