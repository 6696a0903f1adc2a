/**
 * Request validation with two Ajv instances: query strings and path parameters are text on the wire, so their
 * types are coerced (`limit=5` is the integer 5); JSON bodies are not (a string where an integer is required is
 * 400, exactly as the OpenAPI document says). Both refuse unknown fields instead of dropping them. Ajv and its
 * formats are the ones fastify's own compiler uses (resolved through it: no dependency of our own).
 */
import { createRequire } from 'node:module';
import type { FastifySchemaCompiler } from 'fastify';
import type AjvType from 'ajv';

const fromCompiler = createRequire(createRequire(require.resolve('fastify')).resolve('@fastify/ajv-compiler'));
const Ajv = (fromCompiler('ajv') as { default: typeof AjvType }).default;
const addFormats = fromCompiler('ajv-formats') as (ajv: AjvType) => AjvType;

function build(coerceTypes: 'array' | false): AjvType {
  const ajv = new Ajv({
    coerceTypes,
    useDefaults: true,
    removeAdditional: false,
    addUsedSchema: false,
    // Never true on a public endpoint: a crafted body could make validation slow.
    allErrors: false,
    // OpenAPI keywords that only document (swagger reads them, the validator need not).
    strict: false,
  });
  addFormats(ajv);
  return ajv;
}

/** The fastify validator compiler: bodies strict, everything else coerced from text. */
export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const text = build('array');
  const json = build(false);
  return ({ schema, httpPart }) => (httpPart === 'body' ? json : text).compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
}
