import { describeLockContract } from '../support/contract.js';

describeLockContract('election');
