/**
 * One body for `/healthz` and `/readyz` on every process (API, worker, push node): orchestrators
 * and balancers read `status`; a 503 also carries the catalog's `HERALD_NOT_READY` code and why.
 */
import { HttpError } from './catalog.js';

export type Service = 'api' | 'worker' | 'node';

export interface HealthBody {
  status: 'ok' | 'unavailable';
  service: Service;
  code?: typeof HttpError.NotReady.code;
  message?: string;
}

/** 200 of `/healthz`, and of `/readyz` when ready. */
export function healthOk(service: Service): HealthBody {
  return { status: 'ok', service };
}

/** 503 of `/readyz`: not ready, and why (`draining`, `redis unavailable`...). */
export function notReady(service: Service, message: string): HealthBody {
  return { status: 'unavailable', service, code: HttpError.NotReady.code, message };
}
