/** Reading TEMPORAL_* variables and envconfig profiles into connection settings: what is honoured, what is refused. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import { makeTestCerts, TestCerts } from '../../harness/certs';
import { loadTemporalAccess, TemporalAccess, TemporalSettingsError } from '../../src/temporal-connection';
import { ConfigError, loadConfig } from '../../src/config';
import { litestreamEnv } from '../../src/replication/urls';

let certs: TestCerts;

function refusedWith(env: Record<string, string>, re: RegExp): void {
  assert.throws(
    () => loadTemporalAccess(env),
    (err: Error) => {
      assert.ok(err instanceof TemporalSettingsError, String(err));
      assert.match(err.message, re);
      assert.equal(err.message.split('\n').length, 1, err.message);
      return true;
    },
  );
}

describe('Temporal connection settings', () => {
  before(() => {
    certs = makeTestCerts();
  });
  after(() => fs.rmSync(certs.dir, { recursive: true, force: true }));

  it('with nothing set: no address, plain, the defaults', () => {
    const a = loadTemporalAccess({});
    assert.deepEqual(a.toJSON(), { address: null, namespace: null, mode: 'plain', source: 'defaults' });
    assert.equal(a.secured, false);
    assert.deepEqual(a.connectionOptions('127.0.0.1:7233'), { address: '127.0.0.1:7233' });
    const cfg = loadConfig({});
    assert.equal(cfg.temporalAddress, null, '`workbooks up` runs its embedded server');
    assert.equal(cfg.namespace, 'default');
  });

  it('mTLS from TEMPORAL_* variables: files read once, the server name and CA passed on', () => {
    const a = loadTemporalAccess({
      TEMPORAL_ADDRESS: 'temporal.example:7233',
      TEMPORAL_NAMESPACE: 'prod',
      TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caCert,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
    });
    assert.equal(a.address, 'temporal.example:7233');
    assert.equal(a.namespace, 'prod');
    assert.equal(a.mode, 'mTLS');
    const o = a.connectionOptions('temporal.example:7233');
    const tls = o.tls as { serverNameOverride: string; serverRootCACertificate: Uint8Array; clientCertPair: { crt: Uint8Array; key: Uint8Array } };
    assert.equal(tls.serverNameOverride, 'localhost');
    assert.deepEqual(Buffer.from(tls.clientCertPair.crt), fs.readFileSync(certs.clientCert));
    assert.deepEqual(Buffer.from(tls.clientCertPair.key), fs.readFileSync(certs.clientKey));
    assert.deepEqual(Buffer.from(tls.serverRootCACertificate), fs.readFileSync(certs.caCert));
  });

  it('TLS with system roots from TEMPORAL_TLS=true or an API key alone; TEMPORAL_TLS=false turns it off', () => {
    assert.equal(loadTemporalAccess({ TEMPORAL_TLS: 'true' }).mode, 'TLS');
    assert.deepEqual(loadTemporalAccess({ TEMPORAL_TLS: '1' }).connectionOptions('h:1').tls, {});
    const key = loadTemporalAccess({ TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_API_KEY: 'k-123' });
    assert.equal(key.mode, 'TLS + API key');
    assert.equal(key.connectionOptions('h:1').apiKey, 'k-123');
    assert.equal(loadTemporalAccess({ TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_NAME: 'x' }).mode, 'plain');
  });

  it('inline PEM data (TEMPORAL_TLS_*_DATA) works like files', () => {
    const a = loadTemporalAccess({
      TEMPORAL_TLS_CLIENT_CERT_DATA: fs.readFileSync(certs.clientCert, 'utf8'),
      TEMPORAL_TLS_CLIENT_KEY_DATA: fs.readFileSync(certs.clientKey, 'utf8'),
    });
    assert.equal(a.mode, 'mTLS');
  });

  it('a TOML profile, selected by TEMPORAL_PROFILE, with variables laid over it', () => {
    const file = path.join(certs.dir, 'profiles.toml');
    fs.writeFileSync(
      file,
      `[profile.default]\naddress = "localhost:7233"\n\n[profile.cloud]\naddress = "acct.tmprl.cloud:7233"\nnamespace = "ns1"\napi_key = "from-file"\n\n[profile.mtls]\naddress = "a:1"\n[profile.mtls.tls]\nclient_cert_path = "${certs.clientCert}"\nclient_key_path = "${certs.clientKey}"\n[profile.mtls.grpc_meta]\nx-team = "books"\n`,
    );
    const cloud = loadTemporalAccess({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud', TEMPORAL_NAMESPACE: 'ns2' });
    assert.deepEqual(cloud.toJSON(), { address: 'acct.tmprl.cloud:7233', namespace: 'ns2', mode: 'TLS + API key', source: `profile 'cloud' of ${file} + TEMPORAL_* variables` });
    const mtls = loadTemporalAccess({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'mtls' });
    assert.equal(mtls.mode, 'mTLS');
    assert.deepEqual(mtls.connectionOptions('a:1').metadata, { 'x-team': 'books' });
    assert.equal(loadTemporalAccess({ TEMPORAL_CONFIG_FILE: file }).address, 'localhost:7233', 'the default profile');
    // The user's default file (~/.config/temporalio/temporal.toml) is read as Temporal's CLI reads it.
    const home = path.join(certs.dir, 'home');
    fs.mkdirSync(path.join(home, '.config', 'temporalio'), { recursive: true });
    fs.copyFileSync(file, path.join(home, '.config', 'temporalio', 'temporal.toml'));
    assert.equal(loadTemporalAccess({ HOME: home, TEMPORAL_PROFILE: 'cloud' }).address, 'acct.tmprl.cloud:7233');
    // An explicit address override beats the profile's.
    const cfg = loadConfig({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' }, { temporalAddress: 'elsewhere:7233' });
    assert.equal(cfg.temporalAddress, 'elsewhere:7233');
    assert.equal(cfg.namespace, 'ns1');
    assert.equal(cfg.temporal.mode, 'TLS + API key');
  });

  it('refuses, in one line naming the variable or profile key and the file', () => {
    const missing = path.join(certs.dir, 'nope.pem');
    refusedWith({ TEMPORAL_TLS_CLIENT_CERT_PATH: missing, TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey }, new RegExp(`^TEMPORAL_TLS_CLIENT_CERT_PATH ${missing}: no such file$`));
    refusedWith({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.dir }, /^TEMPORAL_TLS_SERVER_CA_CERT_PATH \S+: is a directory$/);
    refusedWith({ TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert }, /^TEMPORAL_TLS_CLIENT_CERT_PATH \S+client\.pem is set but no client key is/);
    refusedWith({ TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey }, /is set but no client certificate is/);
    refusedWith({ TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientKey, TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey }, /^TEMPORAL_TLS_CLIENT_CERT_PATH \S+client\.key: not a PEM certificate$/);
    refusedWith({ TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert, TEMPORAL_TLS_CLIENT_KEY_DATA: 'garbage' }, /^TEMPORAL_TLS_CLIENT_KEY_DATA: not a PEM private key$/);
    refusedWith({ TEMPORAL_TLS: 'yes' }, /^TEMPORAL_TLS must be true or false, got 'yes'$/);
    refusedWith({ TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' }, /^TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not supported/);
    refusedWith({ TEMPORAL_CONFIG_FILE: path.join(certs.dir, 'none.toml') }, /^TEMPORAL_CONFIG_FILE \S+none\.toml: no such file$/);
    refusedWith({ TEMPORAL_PROFILE: 'prod', HOME: path.join(certs.dir, 'nohome') }, /^TEMPORAL_PROFILE 'prod': no such profile in any config file/);
    const bad = path.join(certs.dir, 'bad.toml');
    fs.writeFileSync(bad, '[profile.x\naddress = 1\n');
    refusedWith({ TEMPORAL_CONFIG_FILE: bad }, new RegExp(`^config file ${bad}: `));
    const both = path.join(certs.dir, 'both.toml');
    fs.writeFileSync(both, `[profile.default.tls]\nclient_cert_path = "${certs.clientCert}"\nclient_cert_data = "x"\n`);
    refusedWith({ TEMPORAL_CONFIG_FILE: both }, /both a path and data are given for the client cert/);
    const inFile = path.join(certs.dir, 'missing-cert.toml');
    fs.writeFileSync(inFile, `[profile.p.tls]\nclient_cert_path = "${missing}"\nclient_key_path = "${certs.clientKey}"\n`);
    refusedWith({ TEMPORAL_CONFIG_FILE: inFile, TEMPORAL_PROFILE: 'p' }, new RegExp(`^client_cert_path of profile 'p' in ${inFile} ${missing}: no such file$`));
    // Through loadConfig: a ConfigError, as every other setting.
    assert.throws(() => loadConfig({ TEMPORAL_TLS: 'maybe' }), (err: Error) => err instanceof ConfigError && /TEMPORAL_TLS must be true or false/.test(err.message));
  });

  it('secrets never serialize or print: not in JSON, not in util.inspect, not in the config', () => {
    const keyPem = fs.readFileSync(certs.clientKey, 'utf8');
    const a = loadTemporalAccess({ TEMPORAL_ADDRESS: 'h:1', TEMPORAL_API_KEY: 'very-secret-api-key', TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert, TEMPORAL_TLS_CLIENT_KEY_DATA: keyPem, TEMPORAL_GRPC_META_X_SECRET: 'meta-secret' });
    const cfg = loadConfig({ TEMPORAL_ADDRESS: 'h:1', TEMPORAL_API_KEY: 'very-secret-api-key', TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert, TEMPORAL_TLS_CLIENT_KEY_DATA: keyPem });
    const keyLine = keyPem.split('\n')[1]!;
    for (const text of [JSON.stringify(a), util.inspect(a, { showHidden: true, depth: 10 }), JSON.stringify(cfg), util.inspect(cfg, { depth: 10 }), a.describe(), `${a}`]) {
      for (const secret of ['very-secret-api-key', keyLine, 'meta-secret']) assert.ok(!text.includes(secret), `no secret in ${text.slice(0, 80)}`);
    }
    assert.equal(a.describe(), 'mTLS + API key, TEMPORAL_* variables');
    assert.ok(a instanceof TemporalAccess);
  });

  it("Litestream (the workers' only long-lived child) gets no TEMPORAL_* variable", () => {
    const env = litestreamEnv({ PATH: '/usr/bin', TEMPORAL_API_KEY: 'k', TEMPORAL_TLS_CLIENT_KEY_DATA: 'pem', TEMPORAL_TLS_CLIENT_KEY_PATH: '/k', TEMPORAL_ADDRESS: 'h:1', TEMPORAL_CONFIG_FILE: '/c', AWS_REGION: 'x' });
    assert.deepEqual(Object.keys(env).filter((k) => k.startsWith('TEMPORAL_')), []);
    assert.equal(env.AWS_REGION, 'x');
  });
});
