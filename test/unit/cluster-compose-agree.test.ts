/**
 * docker-compose.yml and scripts/cluster.sh describe one production topology: the same Temporal, PostgreSQL and
 * MinIO versions, the same long-running services, the same setup steps (schemas, namespace, our search attributes,
 * the bucket) and the same stores. The script is the one that runs here; compose is kept in step by this test.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTE_KEYS } from '../../src/contract/search-attributes';
import { resolveBinary } from '../../src/tools';

const ROOT = path.resolve(__dirname, '../../..');
const script = fs.readFileSync(path.join(ROOT, 'scripts/cluster.sh'), 'utf8');

interface Service {
  image?: string;
  build?: { args?: Record<string, string>; dockerfile_inline?: string };
  profiles?: string[];
  restart?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
}
const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

/** A top-level `NAME=value` assignment of the script (value unquoted, up to a comment). */
function scriptVar(name: string): string {
  const m = new RegExp(`^${name}=("?)([^"\\s#]*)\\1\\s*(?:#.*)?$`, 'm').exec(script);
  assert.ok(m, `scripts/cluster.sh sets ${name}`);
  return m[2]!;
}
/** A top-level `NAME="a b c"` list of the script. */
function scriptList(name: string): string[] {
  const m = new RegExp(`^${name}="([^"]*)"`, 'm').exec(script);
  assert.ok(m, `scripts/cluster.sh sets ${name}="…"`);
  return m[1]!.split(/\s+/).filter(Boolean);
}
const tagOf = (image: string | undefined): string => {
  assert.ok(image, 'has an image');
  return image.slice(image.lastIndexOf(':') + 1);
};
const commandText = (s: Service): string => (Array.isArray(s.command) ? s.command.join('\n') : (s.command ?? ''));
/** Services that keep running (not one-shot setup steps, not optional profiles). */
const longRunning = Object.entries(services)
  .filter(([, s]) => !s.profiles?.length && !/^on-failure/.test(s.restart ?? ''))
  .map(([n]) => n)
  .sort();

describe('docker-compose.yml and scripts/cluster.sh agree', () => {
  it('Temporal: one version for the server, its schema tool and the admin tools, the one the dev server embeds', () => {
    const v = scriptVar('TEMPORAL_VERSION');
    assert.match(v, /^\d+\.\d+\.\d+$/);
    const temporalImages = Object.entries(services).filter(([, s]) => /^temporalio\/(server|admin-tools|auto-setup):/.test(s.image ?? ''));
    assert.ok(temporalImages.some(([, s]) => s.image!.startsWith('temporalio/server:')), 'compose runs temporalio/server');
    for (const [name, s] of temporalImages) assert.equal(tagOf(s.image), v, `${name}: ${s.image} is Temporal ${v}`);
    assert.match(script, /go\.temporal\.io\/server\/cmd\/server@v\$TEMPORAL_VERSION/, 'the script builds that server');
    assert.match(script, /go\.temporal\.io\/server\/cmd\/tools\/sql@v\$TEMPORAL_VERSION/, 'and that schema tool');
    // The Temporal CLI that bootstrap installs runs this same server as its dev server (what every test uses).
    const cli = execFileSync(resolveBinary('temporal'), ['--version'], { encoding: 'utf8' });
    assert.match(cli, new RegExp(`Server ${v.replace(/\./g, '\\.')}\\b`), `the dev server is Temporal ${v}: ${cli.trim()}`);
  });

  it('PostgreSQL: the same major.minor, and the npm package the script installs is that release', () => {
    const v = scriptVar('POSTGRES_VERSION');
    assert.match(v, /^\d+\.\d+$/);
    assert.match(tagOf(services.postgresql!.image), new RegExp(`^${v.replace('.', '\\.')}(-|$)`), services.postgresql!.image);
    assert.ok(scriptVar('POSTGRES_NPM_VERSION').startsWith(`${v}.0-`), 'the npm package version is that release');
  });

  it('MinIO: compose builds the same module version the script builds', () => {
    const v = scriptVar('MINIO_VERSION');
    assert.match(v, /^v\d+\.\d+\.\d+-\d{14}-[0-9a-f]{12}$/, 'a Go pseudo-version');
    const minio = services.minio!;
    assert.equal(minio.build?.args?.MINIO_VERSION, v);
    assert.match(minio.build?.dockerfile_inline ?? '', /go install github\.com\/minio\/minio@\$\$\{MINIO_VERSION\}/);
    assert.equal(tagOf(minio.image), v, 'the built image is tagged with it');
    assert.match(script, /github\.com\/minio\/minio@\$MINIO_VERSION/, 'the script builds github.com/minio/minio at it');
  });

  it('the same long-running services: each part of the script is one compose service, and none is missing', () => {
    const parts = scriptList('PARTS').map((p) => p.split('='));
    for (const p of parts) assert.equal(p.length, 2, `PARTS entry ${p.join('=')} is part=service`);
    assert.deepEqual(parts.map(([, svc]) => svc).sort(), longRunning, 'compose services = script parts');
    // The script's hosts are the parts that map to compose's worker services.
    const hosts = scriptList('HOSTS');
    const workers = Object.entries(services).filter(([, s]) => s.environment?.WORKBOOKS_HOST_ID).map(([n]) => n).sort();
    assert.deepEqual(parts.filter(([p]) => hosts.includes(p!)).map(([, s]) => s).sort(), workers, 'hosts = worker services');
  });

  it('the same setup: schemas with temporal-sql-tool, the default namespace, our search attributes, the bucket', () => {
    const want = SEARCH_ATTRIBUTE_KEYS.map((k) => k.name).sort();
    assert.deepEqual(scriptList('SEARCH_ATTRIBUTES').sort(), want, 'the script registers the contract\'s search attributes');
    const sa = commandText(services['temporal-search-attributes']!);
    const loop = /for sa in ([^;]+);/.exec(sa);
    assert.ok(loop, 'compose registers search attributes in a loop');
    assert.deepEqual(loop[1]!.trim().split(/\s+/).sort(), want, 'compose registers the contract\'s search attributes');
    for (const text of [sa, script]) {
      assert.match(text, /--type Keyword/);
      assert.match(text, /operator namespace create --namespace default/);
    }
    for (const schema of ['postgresql/v12/temporal', 'postgresql/v12/visibility']) {
      assert.ok(commandText(services['temporal-schema']!).includes(schema.replace(/\/[^/]+$/, '/')), `compose sets up ${schema}`);
      assert.ok(script.includes(schema.replace(/\/[^/]+$/, '/')), `the script sets up ${schema}`);
    }
    const bucket = scriptVar('BUCKET');
    assert.match(commandText(services['minio-bucket']!), new RegExp(`mc mb --ignore-existing store/${bucket}\\b`));
  });

  it('the same stores: cold, archive and replicas under one bucket, path-style, on MinIO', () => {
    const bucket = scriptVar('BUCKET');
    const worker = services.worker!.environment!;
    for (const key of ['WORKBOOKS_COLD_URL', 'WORKBOOKS_ARCHIVE_URL', 'WORKBOOKS_REPLICA_URL', 'WORKBOOKS_S3_FORCE_PATH_STYLE', 'AWS_REGION']) {
      const m = new RegExp(`^${key}=(.*)$`, 'm').exec(script);
      assert.ok(m, `the script sets ${key}`);
      assert.equal(m[1]!.replace('$BUCKET', bucket), worker[key], key);
    }
  });
});
