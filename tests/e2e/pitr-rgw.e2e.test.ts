// Point-in-time recovery end to end on Ceph RGW; pitr.e2e.test.ts runs the same suite on s3rver.
import { describePointInTimeRecovery } from './pitr-suite.js';

describePointInTimeRecovery('rgw');
