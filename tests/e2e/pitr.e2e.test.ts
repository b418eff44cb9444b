// Point-in-time recovery end to end on s3rver; pitr-rgw.e2e.test.ts runs the same suite on Ceph RGW.
import { describePointInTimeRecovery } from './pitr-suite.js';

describePointInTimeRecovery('s3rver');
