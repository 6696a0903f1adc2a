/** What child processes get from the service's environment. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childEnv } from '../../src/child-env';
import { litestreamEnv } from '../../src/replication/urls';

const service = {
  PATH: '/usr/bin',
  HOME: '/root',
  WORKBOOKS_TOKENS: 'secret-admin-token=*',
  WORKBOOKS_TOKENS_FILE: '/etc/workbooks/tokens',
  TEMPORAL_API_KEY: 'temporal-key',
  AWS_ACCESS_KEY_ID: 'AKIA',
  AWS_SECRET_ACCESS_KEY: 'aws-secret',
  AWS_CA_BUNDLE: '/etc/ca.pem',
  GITHUB_TOKEN: 'ghp',
};

test('a child gets only what any program needs, plus what its caller names', () => {
  assert.deepEqual(childEnv(service), { PATH: '/usr/bin', HOME: '/root' });
  assert.deepEqual(childEnv(service, { names: ['GITHUB_TOKEN'] }), { PATH: '/usr/bin', HOME: '/root', GITHUB_TOKEN: 'ghp' });
});

test('Litestream gets S3 credentials and TLS roots, never API tokens or other keys', () => {
  const env = litestreamEnv(service);
  assert.equal(env.AWS_SECRET_ACCESS_KEY, 'aws-secret');
  assert.equal(env.SSL_CERT_FILE, '/etc/ca.pem', 'the AWS CA bundle as Go reads it');
  for (const k of ['WORKBOOKS_TOKENS', 'WORKBOOKS_TOKENS_FILE', 'TEMPORAL_API_KEY', 'GITHUB_TOKEN', 'AWS_CA_BUNDLE']) assert.equal(env[k], undefined, k);
});
