declare const HERD_VERSION: string | undefined;

/** Set by the bundler from package.json; "dev" when running the sources directly (tests). */
export const VERSION: string = typeof HERD_VERSION === 'string' ? HERD_VERSION : 'dev';
