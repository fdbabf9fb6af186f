/** baton's version, as package.json says (test/core/version.test.ts keeps the two equal): `baton --version`, `baton_build_info`, `service.version`. */
export const BATON_VERSION = '0.1.0';
