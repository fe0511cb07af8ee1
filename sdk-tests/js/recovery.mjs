// Scenario (b): a recoverable subscription (`chat:`, force_recovery) loses its connection,
// misses 3 publications and gets exactly those back, in order, on the automatic resubscribe.

import { main } from './lib.mjs';
import { cutScenario } from './cut.mjs';

main('js recovery', () => cutScenario({ prefix: 'chat:rec-', missed: 3, expectRecovered: true }));
