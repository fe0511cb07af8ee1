// Scenario (c): the gap exceeds the history (`small:` keeps 3 publications): 6 publications are
// missed, so the resubscribe reports `recovered: false` and delivers none of them.

import { main } from './lib.mjs';
import { cutScenario } from './cut.mjs';

main('js gap exceeds history', () =>
  cutScenario({ prefix: 'small:gap-', missed: 6, expectRecovered: false }),
);
