-- Drive ckpt-lsp from a real Neovim (Debian's 0.7.2, headless) the way a user would:
-- open the model file, wait for our diagnostics, take the quickfix, save, wait for the
-- diagnostics to clear. Everything seen is written as JSON to $CKPT_E2E_REPORT, then :qa!.
--
-- Inputs (environment): CKPT_E2E_PYTHON (interpreter that runs the server),
-- CKPT_E2E_ROOT (workspace folder), CKPT_E2E_REPORT (output file),
-- CKPT_E2E_CODE (expected rule code, e.g. CKPT005), CKPT_E2E_TIMEOUT_MS (per wait).
-- 0.7 has no vim.lsp.start (0.8+), so this uses start_client + buf_attach_client.

local env = vim.env
local python = env.CKPT_E2E_PYTHON or "python3"
local root = env.CKPT_E2E_ROOT or vim.fn.getcwd()
local report_path = assert(env.CKPT_E2E_REPORT, "CKPT_E2E_REPORT is not set")
local want_code = env.CKPT_E2E_CODE or "CKPT005"
local timeout_ms = tonumber(env.CKPT_E2E_TIMEOUT_MS or "20000")

local started = vim.loop.hrtime()
local report = {
  nvim = vim.version(),
  publishes = {},
  steps = {},
  errors = {},
  lsp_log = vim.lsp.get_log_path(),
}

local function elapsed_ms()
  return math.floor((vim.loop.hrtime() - started) / 1e6)
end

local function step(name)
  table.insert(report.steps, { name = name, t_ms = elapsed_ms() })
end

local function write_report_and_quit()
  report.t_ms = elapsed_ms()
  local file = io.open(report_path, "w")
  if file then
    file:write(vim.fn.json_encode(report))
    file:close()
  end
  vim.cmd("qa!")
end

-- Only the last publish for a URI counts, as in any client.
local latest = {}

local function on_publish(err, result, ctx, config)
  if result then
    table.insert(report.publishes, {
      uri = result.uri,
      version = result.version,
      diagnostics = result.diagnostics,
      t_ms = elapsed_ms(),
    })
    latest[result.uri] = result.diagnostics
  end
  -- Keep the stock behaviour too, so the buffer shows the diagnostics as it would for a user.
  return vim.lsp.diagnostic.on_publish_diagnostics(err, result, ctx, config)
end

local function find_diagnostic(uri)
  for _, diagnostic in ipairs(latest[uri] or {}) do
    if diagnostic.code == want_code then
      return diagnostic
    end
  end
  return nil
end

local function pick_quickfix(actions)
  local best
  for _, action in ipairs(actions or {}) do
    local is_quickfix = action.kind ~= nil and vim.startswith(action.kind, "quickfix")
    if is_quickfix and (best == nil or (action.isPreferred and not best.isPreferred)) then
      best = action
    end
  end
  return best
end

local function run()
  local bufnr = vim.api.nvim_get_current_buf()
  local uri = vim.uri_from_bufnr(bufnr)
  report.uri = uri

  local client_id = vim.lsp.start_client({
    name = "ckpt-lsp",
    cmd = { python, "-m", "ckpt_lsp", "--stdio" },
    root_dir = root,
    handlers = { ["textDocument/publishDiagnostics"] = on_publish },
    on_exit = function(code, signal)
      report.server_exit = { code = code, signal = signal, t_ms = elapsed_ms() }
    end,
  })
  if not client_id then
    error("vim.lsp.start_client failed")
  end
  vim.lsp.buf_attach_client(bufnr, client_id)
  step("attached")

  local diagnostic
  vim.wait(timeout_ms, function()
    diagnostic = find_diagnostic(uri)
    return diagnostic ~= nil or report.server_exit ~= nil
  end, 50)
  if report.server_exit ~= nil then
    error("the server exited early: " .. vim.inspect(report.server_exit) .. "; see " .. report.lsp_log)
  end
  if diagnostic == nil then
    error("no " .. want_code .. " diagnostic within " .. timeout_ms .. " ms")
  end
  step("diagnostic")
  report.diagnostic = diagnostic

  local params = {
    textDocument = { uri = uri },
    range = diagnostic.range,
    context = { diagnostics = { diagnostic } },
  }
  local responses, request_err =
    vim.lsp.buf_request_sync(bufnr, "textDocument/codeAction", params, timeout_ms)
  if not responses then
    error("codeAction request failed: " .. tostring(request_err))
  end
  local response = responses[client_id] or {}
  if response.error then
    error("codeAction error: " .. vim.inspect(response.error))
  end
  report.actions = response.result or {}
  step("code_actions")

  local action = pick_quickfix(report.actions)
  if not action then
    error("no quickfix among " .. #report.actions .. " code actions")
  end
  -- A server may send the edit lazily; 0.7 advertises resolveSupport for "edit".
  if action.edit == nil and action.data ~= nil then
    local client = vim.lsp.get_client_by_id(client_id)
    local resolved = client.request_sync("codeAction/resolve", action, timeout_ms, bufnr)
    if not resolved or resolved.err then
      error("codeAction/resolve failed: " .. vim.inspect(resolved))
    end
    action = resolved.result
  end
  report.chosen_action = action
  if action.edit == nil then
    error("the quickfix has no edit: " .. vim.inspect(action))
  end

  vim.lsp.util.apply_workspace_edit(action.edit, "utf-16")
  report.applied = true
  step("applied")
  vim.cmd("write")
  step("written")

  local cleared = vim.wait(timeout_ms, function()
    return latest[uri] ~= nil and #latest[uri] == 0
  end, 50)
  report.cleared = cleared
  if not cleared then
    error("diagnostics did not clear within " .. timeout_ms .. " ms")
  end
  step("cleared")
  report.final_text = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n")
end

vim.api.nvim_create_autocmd("VimEnter", {
  once = true,
  callback = function()
    local ok, err = pcall(run)
    if not ok then
      table.insert(report.errors, tostring(err))
    end
    local clients = vim.lsp.get_active_clients()
    if #clients > 0 then
      -- A clean shutdown/exit, so the server's exit is part of what we test.
      vim.lsp.stop_client(clients)
      vim.wait(2000, function()
        return report.server_exit ~= nil
      end, 50)
    end
    write_report_and_quit()
  end,
})
