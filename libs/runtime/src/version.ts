/** Tidemark's version, from the root package.json (for manifests and logs). */
export declare function readServiceVersion(): string;
