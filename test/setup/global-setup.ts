// Global test setup (Redis is started here once the checkpoint tests need it).
export default function setup(): void {}
