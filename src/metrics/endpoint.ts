/**
 * Where the Prometheus endpoint binds. The default port (9464) falls back to a free one when it is busy (two
 * workers on one machine); a port chosen explicitly must be free.
 */
import net from 'node:net';
import { Config, ConfigError } from '../config';

export interface MetricsEndpoint {
  /** host:port for the SDK's Prometheus exporter. */
  bindAddress: string;
  /** Where to scrape. */
  url: string;
  port: number;
  /** Set when the endpoint is not on the configured port (why). */
  note: string | null;
}

/**
 * Binds `host:port` for a moment: the port bound (with 0, one the system picked, free a moment ago), or null when
 * the port is taken or not ours to bind.
 */
function probePort(host: string, port: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (port !== 0 && (err.code === 'EADDRINUSE' || err.code === 'EACCES')) resolve(null);
      else reject(err);
    });
    srv.listen({ host, port, exclusive: true }, () => {
      const bound = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(bound));
    });
  });
}

/** A port on `host` that was free a moment ago. */
async function anyFreePort(host: string): Promise<number> {
  return (await probePort(host, 0))!;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function busyPortError(cfg: Pick<Config, 'metricsBind'>, port: number): ConfigError {
  return new ConfigError(`metrics port ${port} on ${cfg.metricsBind} is already in use; set WORKBOOKS_METRICS_PORT to a free port, 0 for any, or off`);
}

/** The endpoint to bind, or null when metrics are off. Throws ConfigError for an explicit port that is busy. */
export async function chooseMetricsEndpoint(cfg: Pick<Config, 'metricsPort' | 'metricsPortExplicit' | 'metricsBind'>): Promise<MetricsEndpoint | null> {
  if (cfg.metricsPort === null) return null;
  const bind = cfg.metricsBind;
  let port = cfg.metricsPort;
  let note: string | null = null;
  if (port === 0) {
    port = await anyFreePort(bind);
  } else if ((await probePort(bind, port)) === null) {
    if (cfg.metricsPortExplicit) throw busyPortError(cfg, port);
    note = `port ${port} was busy`;
    port = await anyFreePort(bind);
  }
  // A wildcard bind is scraped through any address; show the loopback one.
  const shown = bind === '0.0.0.0' ? '127.0.0.1' : bind === '::' ? '::1' : bind;
  return { bindAddress: hostPort(bind, port), url: `http://${hostPort(shown, port)}/metrics`, port, note };
}

/** `--metrics-port <n|off>` as Config overrides (for the CLI). */
export function metricsPortOption(raw: string): Pick<Config, 'metricsPort' | 'metricsPortExplicit'> {
  if (/^(off|none|false)$/i.test(raw.trim())) return { metricsPort: null, metricsPortExplicit: true };
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`--metrics-port must be 0-65535 or off, got '${raw}'`);
  return { metricsPort: n, metricsPortExplicit: true };
}
