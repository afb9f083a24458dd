/**
 * otel/prometheus.yml, otel/alerts.yml and otel/alerts.test.yml: the real promtool checks the config and
 * the rules and runs the rule unit tests; every scrape target is a compose service; every alert has a
 * runbook, a severity, and a test case where it fires and one where it must not.
 */
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/telemetry/metrics.js';
import { PROMTOOL, PROMTOOL_REQUIRED, promtool } from '../../support/promtool.js';
import { composeServices, hostOf, portOf, readYaml, type YamlMap } from './stack-files.js';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface AlertRuleTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[] | null;
}

const rules = (readYaml('otel/alerts.yml') as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);
const alerts = rules.filter((r) => r.alert !== undefined);
const unitTests = (
  readYaml('otel/alerts.test.yml') as {
    rule_files: string[];
    tests: { name: string; alert_rule_test?: AlertRuleTest[] }[];
  }
).tests;
const prometheusConfig = readYaml('otel/prometheus.yml') as {
  rule_files: string[];
  scrape_configs: (YamlMap & { job_name: string; static_configs: { targets: string[] }[] })[];
};

/** With promtool, or (locally, without it) skipped; .ci/run sets CHRONICLE_TEST_REQUIRE_SERVICES=1. */
const describePromtool = PROMTOOL !== undefined || PROMTOOL_REQUIRED ? describe : describe.skip;
const promtoolTitle =
  PROMTOOL !== undefined || PROMTOOL_REQUIRED
    ? 'promtool'
    : "promtool (skipped: promtool is not installed — Debian's prometheus package; .ci/run installs it)";

describePromtool(promtoolTitle, () => {
  it('promtool - check config accepts otel/prometheus.yml and the rule files it loads', () => {
    const out = promtool(['check', 'config', 'otel/prometheus.yml']);
    expect(out).toContain('SUCCESS: otel/prometheus.yml is valid prometheus config file syntax');
    expect(out).toContain(`SUCCESS: ${alerts.length} rules found`);
  });

  it('promtool - check rules accepts otel/alerts.yml', () => {
    expect(promtool(['check', 'rules', 'otel/alerts.yml'])).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it('promtool - every alert unit test passes', () => {
    expect(promtool(['test', 'rules', 'otel/alerts.test.yml'])).toContain('SUCCESS');
  });
});

describe('otel/prometheus.yml', () => {
  const services = composeServices();

  it('prometheus - scrapes Chronicle, the Collector, Tempo and itself, each a compose service', () => {
    const jobs = Object.fromEntries(
      prometheusConfig.scrape_configs.map((s) => [s.job_name, s.static_configs.flatMap((c) => c.targets)]),
    );
    expect(Object.keys(jobs).sort()).toEqual(['chronicle', 'otel-collector', 'prometheus', 'tempo']);
    for (const [job, targets] of Object.entries(jobs)) {
      expect(targets.length, job).toBeGreaterThan(0);
      for (const target of targets)
        expect(Object.keys(services), `${job}: ${target}`).toContain(hostOf(target));
    }
    expect(jobs.chronicle).toEqual(['chronicle:8700']);
    expect(jobs.prometheus).toEqual(['prometheus:9090']);
    // Chronicle serves /metrics on its API port (CHRONICLE_PORT in the compose file).
    expect(portOf(jobs.chronicle![0]!)).toBe(
      Number((services.chronicle!.environment as YamlMap).CHRONICLE_PORT),
    );
  });

  it('prometheus - loads the alert rules, by a path relative to itself', () => {
    expect(prometheusConfig.rule_files).toEqual(['alerts.yml']);
  });
});

describe('otel/alerts.yml', () => {
  it('alerts - has the alerts of the issue', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual(
      [
        'ChronicleBufferSaturated',
        'ChronicleConsumerLagGrowing',
        'ChronicleDown',
        'ChronicleNotReady',
        'ChronicleRejectRateHigh',
        'ChronicleSpanBuildBehind',
        'ChronicleSpanExportBacklogOld',
        'ChronicleWritesFailing',
        'SwarmTaskFailureRateHigh',
      ].sort(),
    );
  });

  it('alerts - each has a severity, a summary and a one-line runbook', () => {
    for (const alert of alerts) {
      expect(['critical', 'warning'], alert.alert).toContain(alert.labels?.severity);
      expect(alert.annotations?.summary, alert.alert).toMatch(/\S/);
      const runbook = alert.annotations?.runbook ?? '';
      expect(runbook.length, `${alert.alert} runbook`).toBeGreaterThan(40);
      expect(runbook, `${alert.alert} runbook is one line`).not.toContain('\n');
    }
  });

  it('alerts - rates add the replicas up: every rate(), increase() and deriv() is in a sum or max without (instance)', () => {
    for (const alert of alerts) {
      const calls = alert.expr.match(/\b(rate|increase|deriv)\(/g) ?? [];
      const aggregated =
        alert.expr.match(/\b(sum|max) without \(instance(, \w+)*\) \((rate|increase|deriv)\(/g) ?? [];
      expect(aggregated.length, alert.alert).toBe(calls.length);
    }
  });

  it('alerts - every chronicle_* metric and label they use is one Chronicle exports', () => {
    const { registry } = createMetrics();
    const labelsOf = (name: string): readonly string[] => {
      const metric = registry.getSingleMetric(name);
      expect(metric, `${name} is not a metric of src/telemetry/metrics.ts`).toBeDefined();
      return (metric as unknown as { labelNames?: readonly string[] }).labelNames ?? [];
    };
    // The way label names are read here still works.
    expect(labelsOf('chronicle_inputs_rejected_total')).toEqual(['origin', 'reason']);
    // Labels Prometheus adds to every scraped series.
    const targetLabels = ['job', 'instance'];
    for (const alert of alerts) {
      const names = [...new Set(alert.expr.match(/\bchronicle_\w+/g) ?? [])];
      const labels = new Set(names.flatMap(labelsOf));
      const used = [
        ...[...alert.expr.matchAll(/without \(([^)]*)\)/g)].flatMap((m) =>
          m[1]!.split(',').map((l) => l.trim()),
        ),
        ...[...alert.expr.matchAll(/(\w+)\s*(?:=~|!~|!=|=)\s*"/g)].map((m) => m[1]!),
      ];
      for (const label of used) {
        if (!targetLabels.includes(label)) expect([...labels], `${alert.alert}: ${label}`).toContain(label);
      }
    }
  });

  it('alerts - every alert has a unit test where it fires and one where it must not', () => {
    expect(unitTests.length).toBeGreaterThan(0);
    const cases = unitTests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alerts) {
      const own = cases.filter((c) => c.alertname === alert.alert);
      const fires = own.filter((c) => (c.exp_alerts ?? []).length > 0);
      const silent = own.filter((c) => (c.exp_alerts ?? []).length === 0);
      expect(fires.length, `${alert.alert} has no case where it fires`).toBeGreaterThan(0);
      expect(silent.length, `${alert.alert} has no case where it must not fire`).toBeGreaterThan(0);
      // A firing case states the severity and both annotations, so a changed runbook fails the test.
      for (const c of fires) {
        for (const expected of c.exp_alerts!) {
          expect(expected.exp_labels?.severity, alert.alert).toBe(alert.labels?.severity);
          expect(Object.keys(expected.exp_annotations ?? {}).sort(), alert.alert).toEqual([
            'runbook',
            'summary',
          ]);
        }
      }
    }
    // No test names an alert that does not exist.
    for (const c of cases)
      expect(
        alerts.map((a) => a.alert),
        c.alertname,
      ).toContain(c.alertname);
  });
});
