import { describeLockContract } from '../support/contract.js';

describeLockContract('lease-shared');
