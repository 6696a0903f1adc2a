/**
 * 405 for a method a known path does not serve: `Allow` lists the methods it does, and the body is our JSON
 * error (`method_not_allowed`). Unknown paths stay 404. Call `trackRoutes` before any route is added and its `answer`
 * after the last one.
 */
import type { FastifyInstance } from 'fastify';
import { sendError } from './errors';

/** Route config flag of the 405 routes (the auth hook lets them through: the shape of the API is public). */
export const METHOD_NOT_ALLOWED = 'methodNotAllowed';

export function trackRoutes(app: FastifyInstance): { answer(): void } {
  const served = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    if ((route.config as Record<string, unknown> | undefined)?.[METHOD_NOT_ALLOWED]) return;
    const methods = served.get(route.url) ?? new Set<string>();
    for (const m of Array.isArray(route.method) ? route.method : [route.method]) methods.add(m.toUpperCase());
    served.set(route.url, methods);
  });
  return {
    answer() {
      for (const [url, methods] of served) {
        const others = app.supportedMethods.filter((m) => !methods.has(m));
        if (others.length === 0) continue;
        const allow = app.supportedMethods.filter((m) => methods.has(m)).join(', ');
        const path = url.replace(/:(\w+)/g, '{$1}');
        app.route({
          method: others,
          url,
          config: { [METHOD_NOT_ALLOWED]: true },
          schema: { hide: true },
          // Answered before the body is read or parsed.
          onRequest: async (req, reply) => {
            reply.header('allow', allow);
            return sendError(reply, 405, 'method_not_allowed', `${req.method} is not allowed on ${path}; allowed: ${allow}`);
          },
          handler: async () => undefined,
        });
      }
    },
  };
}
