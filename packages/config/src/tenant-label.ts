/**
 * The `tenant` label of per-app metrics (the label `app` is already the service: api, node,
 * worker). HERALD_METRICS_APP_LABEL=false puts every app under `all`; otherwise each app id is
 * its own value up to `max` distinct ids per process, and later ones share `other`, so a
 * deployment with thousands of apps cannot blow up the series count.
 */
export const TENANT_ALL = 'all';
export const TENANT_OTHER = 'other';

export function tenantLabel(enabled: boolean, max = 100): (appId: string) => string {
  const seen = new Set<string>();
  return (appId) => {
    if (!enabled) return TENANT_ALL;
    if (seen.has(appId)) return appId;
    if (seen.size >= max) return TENANT_OTHER;
    seen.add(appId);
    return appId;
  };
}
