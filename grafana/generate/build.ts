/**
 * Writes every dashboard to grafana/dashboards/<file> (`npm run dashboards`). The JSON is committed;
 * test/unit/grafana checks it is what this script writes.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { agentPerformance } from './agent-performance.js';
import { pipelineDashboard } from './chronicle-pipeline.js';
import type { DashboardFile } from './model.js';
import { swarmOverview } from './swarm-overview.js';
import { taskDrilldown } from './task-drilldown.js';
import { tracesDashboard } from './traces.js';

/** Every dashboard, in the order Grafana lists them. */
export function allDashboards(): DashboardFile[] {
  return [swarmOverview(), taskDrilldown(), agentPerformance(), pipelineDashboard(), tracesDashboard()];
}

/** The text written for a dashboard: stable key order, two-space indent, final newline. */
export function dashboardJson(file: DashboardFile): string {
  return `${JSON.stringify(file.dashboard, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = new URL('../dashboards/', import.meta.url);
  for (const file of allDashboards()) {
    writeFileSync(new URL(file.file, dir), dashboardJson(file));
    console.log(`grafana/dashboards/${file.file}`);
  }
}
