/**
 * docker-compose.yml as shipped: no secret has a default (compose refuses to start without the operator's), only
 * the API is published (on loopback unless the operator says otherwise), the Web UI only with its profile, and
 * everything else stays on the internal network; every service running our image gets the data key.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

const FILE = path.resolve(__dirname, '../../../docker-compose.yml');
const text = fs.readFileSync(FILE, 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  ports?: string[];
  networks?: string[] | Record<string, unknown>;
  environment?: Record<string, string>;
}
const compose = parse(text, { merge: true }) as { services: Record<string, Service>; networks?: Record<string, { internal?: boolean } | null> };
const services = Object.entries(compose.services);

/** Names of variables that hold secrets (and values that are secrets, by the name of the key holding them). */
const SECRET = /TOKEN|PASSWORD|PWD|SECRET|DATA_KEY|ACCESS_KEY|ROOT_USER/;

/** Every `${…}` interpolation in the file, with the variable and how it is defaulted. */
function interpolations(): { name: string; op: string; rest: string }[] {
  const out: { name: string; op: string; rest: string }[] = [];
  for (const m of text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}/g)) out.push({ name: m[1]!, op: m[2] ?? '', rest: m[3] ?? '' });
  return out;
}

const networksOf = (s: Service): string[] => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {}));

describe('docker-compose.yml', () => {
  it('parses, and names the services this test checks', () => {
    for (const name of ['postgresql', 'temporal', 'temporal-ui', 'minio', 'worker', 'worker-2', 'api']) assert.ok(compose.services[name], name);
  });

  it('no secret has a default: each is ${VAR:?message}, and no known dev secret is left', () => {
    const secrets = interpolations().filter((i) => SECRET.test(i.name));
    assert.ok(secrets.length >= 8, `the secrets are interpolated (${secrets.map((s) => s.name).join(', ')})`);
    for (const s of secrets) {
      assert.equal(s.op, ':?', `\${${s.name}} must be \${${s.name}:?…} (got '${s.op}${s.rest}')`);
      assert.match(s.rest, /\S{3}/, `\${${s.name}:?…} says what to set`);
    }
    for (const [name, s] of services) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (!SECRET.test(key)) continue;
        assert.match(String(value), /^\$\{[A-Z_]+:\?[^}]+\}$/, `${name}: ${key} comes from the operator, with no default`);
      }
    }
    for (const dev of ['dev-admin-token', 'change-me', 'workbooks-dev-secret', 'POSTGRES_PASSWORD:-']) assert.ok(!text.includes(dev), `no '${dev}' in the file`);
  });

  it('names each required secret: data key, API tokens, MinIO root user and password, Postgres password', () => {
    const required = new Set(interpolations().filter((i) => i.op === ':?').map((i) => i.name));
    for (const v of ['WORKBOOKS_DATA_KEY', 'WORKBOOKS_TOKENS', 'MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD', 'POSTGRES_PASSWORD']) assert.ok(required.has(v), v);
  });

  it('publishes only the API (on loopback by default), and the Web UI only with the `ui` profile', () => {
    const published = services.filter(([, s]) => (s.ports ?? []).length > 0).map(([n]) => n).sort();
    assert.deepEqual(published, ['api', 'temporal-ui']);
    assert.deepEqual(compose.services['temporal-ui']!.profiles, ['ui'], 'the UI runs only with --profile ui');
    for (const [name, s] of services) {
      if (!s.ports?.length) continue;
      assert.equal(s.ports.length, 1, `${name} publishes one port`);
      // "${WORKBOOKS_API_PUBLISH:-127.0.0.1:8787}:8787": the default binds loopback only.
      const m = /^\$\{(WORKBOOKS_[A-Z_]+_PUBLISH):-127\.0\.0\.1:\d+\}:\d+$/.exec(s.ports[0]!);
      assert.ok(m, `${name} publishes on 127.0.0.1 unless ${'WORKBOOKS_*_PUBLISH'} says otherwise: ${s.ports[0]}`);
    }
    for (const name of ['temporal', 'minio', 'worker', 'worker-2', 'postgresql']) assert.equal(compose.services[name]!.ports, undefined, `${name} publishes nothing`);
  });

  it('Temporal, PostgreSQL, MinIO, data servers and metrics are on the internal network only', () => {
    assert.equal(compose.networks?.backend?.internal, true, 'the backend network is internal');
    for (const [name, s] of services) {
      const nets = networksOf(s);
      assert.ok(nets.includes('backend'), `${name} is on the backend network`);
      if (!s.ports?.length) assert.deepEqual(nets, ['backend'], `${name} (not published) is on the backend network only`);
      for (const n of nets) assert.ok(compose.networks && n in compose.networks, `${name}: network ${n} is declared`);
    }
  });

  it('every service that runs our image gets the data key', () => {
    // Our image is workbooks:local (the worker builds it); MinIO is built too, but is not ours.
    const ours = services.filter(([, s]) => s.image === 'workbooks:local');
    assert.deepEqual(ours.map(([n]) => n).sort(), ['api', 'worker', 'worker-2']);
    for (const [name, s] of ours) assert.match(String(s.environment?.WORKBOOKS_DATA_KEY ?? ''), /^\$\{WORKBOOKS_DATA_KEY:\?/, `${name} gets WORKBOOKS_DATA_KEY`);
    assert.match(String(compose.services.api!.environment?.WORKBOOKS_TOKENS ?? ''), /^\$\{WORKBOOKS_TOKENS:\?/);
  });
});
