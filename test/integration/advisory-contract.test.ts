import { describeLockContract } from '../support/contract.js';

describeLockContract('advisory');
describeLockContract('advisory-shared');
describeLockContract('lock-all');
