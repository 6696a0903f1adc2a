/**
 * Finishing touches to the generated OpenAPI document that @fastify/swagger cannot say from a route schema.
 */

/**
 * A route whose body schema admits null takes no body at all too (fastify leaves the body undefined and
 * validates nothing), so its requestBody is optional; @fastify/swagger marks every body required.
 */
export function optionalBodies(doc: Record<string, unknown>): Record<string, unknown> {
  const paths = (doc.paths ?? {}) as Record<string, Record<string, { requestBody?: { required?: boolean; content?: Record<string, { schema?: Record<string, unknown> }> } }>>;
  for (const ops of Object.values(paths)) {
    for (const op of Object.values(ops)) {
      const body = op?.requestBody;
      if (!body?.content) continue;
      if (Object.values(body.content).some((m) => m.schema && admitsNull(m.schema))) body.required = false;
    }
  }
  return doc;
}

function admitsNull(schema: Record<string, unknown>): boolean {
  if (schema.nullable === true) return true;
  if (Array.isArray(schema.type) && schema.type.includes('null')) return true;
  for (const key of ['anyOf', 'oneOf'] as const) {
    const list = schema[key];
    if (Array.isArray(list) && list.some((s) => s && typeof s === 'object' && admitsNull(s as Record<string, unknown>))) return true;
  }
  return false;
}
