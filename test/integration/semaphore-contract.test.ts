import { describeLockContract } from '../support/contract.js';

describeLockContract('semaphore');
