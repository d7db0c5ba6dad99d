import type { BuildOptions } from 'esbuild';

export declare const ENTRY: string;
export declare const OUTFILE: string;
export declare const NODE_OUTFILE: string;
export declare const GZIP_BUDGET: number;
export declare const browserOptions: BuildOptions;
export declare const nodeOptions: BuildOptions;
export declare function bundleBrowser(options?: { write?: boolean }): Promise<string>;
export declare function buildAll(): Promise<string>;
export declare const EXTRA_ENTRIES: Record<'webpush' | 'sw', string>;
