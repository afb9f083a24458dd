// The console's entry: the frame every page shares (skip link, header, main navigation) and the page
// of the current path. Pages are Preact components written with htm; data comes from /api/v1 only.
import { render } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { html } from './lib/html.js';
import { interceptLinks, match, useLocation } from './lib/router.js';
import { Page } from './lib/components.js';
import { TasksPage } from './pages/tasks.js';
import { TaskPage } from './pages/task.js';
import { AgentsPage } from './pages/agents.js';
import { AgentPage } from './pages/agent.js';
import { PipelinePage } from './pages/pipeline.js';
import { TailPage } from './pages/tail.js';
import { TokenForm, forgetToken, useAuth } from './lib/auth.js';

const NAV = [
  ['/tasks', 'Tasks', ['tasks', 'task']],
  ['/agents', 'Agents', ['agents', 'agent']],
  ['/pipeline', 'Pipeline', ['pipeline']],
  ['/tail', 'Live tail', ['tail']],
];

function NotFound({ url }) {
  return html`<${Page} title="Not found" busy=${false}>
    <p>The console has no page at <code>${url.pathname}</code>. <a href="/tasks">Go to the tasks</a>.</p>
  <//>`;
}

function App() {
  const url = useLocation();
  const { page, param } = match(url.pathname);
  const previousPath = useRef(url.pathname);
  const auth = useAuth();

  // A new page (not a new query on the same page): start at its top, with focus on its content, as a
  // full page load would.
  useEffect(() => {
    if (previousPath.current === url.pathname) return;
    previousPath.current = url.pathname;
    window.scrollTo(0, 0);
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [url.pathname]);

  let content;
  if (page === 'tasks') content = html`<${TasksPage} url=${url} />`;
  else if (page === 'task') content = html`<${TaskPage} key=${param} traceId=${param} />`;
  else if (page === 'agents') content = html`<${AgentsPage} url=${url} />`;
  else if (page === 'agent') content = html`<${AgentPage} key=${param} agentId=${param} />`;
  else if (page === 'pipeline') content = html`<${PipelinePage} />`;
  else if (page === 'tail') content = html`<${TailPage} url=${url} />`;
  else content = html`<${NotFound} url=${url} />`;
  // The API asks for a token: the form instead of the page (which shows again once one is given).
  if (auth.needed) content = html`<${TokenForm} />`;

  return html`
    <a class="skip-link" href="#main">Skip to content</a>
    <header class="top">
      <a class="brand" href="/tasks"><span class="brand-mark" aria-hidden="true"></span>Chronicle</a>
      <nav aria-label="Main">
        <ul>
          ${NAV.map(
            ([href, label, pages]) =>
              html`<li key=${href}>
                <a href=${href} aria-current=${pages.includes(page) ? 'page' : undefined}>${label}</a>
              </li>`,
          )}
        </ul>
      </nav>
      ${
        auth.hasToken
          ? html`<button type="button" class="secondary forget-token" onClick=${forgetToken}>
              Forget token
            </button>`
          : null
      }
    </header>
    ${
      auth.forbidden
        ? html`<p class="notice" role="alert">
            ${auth.forbidden}. Use a token with that scope: Forget token, then enter it.
          </p>`
        : null
    }
    ${content}
  `;
}

interceptLinks();
render(html`<${App} />`, document.getElementById('app'));
