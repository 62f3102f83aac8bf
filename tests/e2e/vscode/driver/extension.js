// Test-only driver, running in the same extension host as the ckpt-lsp extension.
// It does what a user would: open the model file, wait for our diagnostics, take the
// preferred quick fix, save, and wait for the diagnostics to clear. What it saw goes to
// $CKPT_E2E_REPORT as JSON, rewritten after every step (done: false) so that a test that
// times out can still tell where it stopped, and a last time with done: true.
"use strict";

const fs = require("fs");
const path = require("path");
const vscode = require("vscode");

const SOURCE = "ckpt-lsp";
const OUR_EXTENSION = "ckpt-lsp.ckpt-lsp";

function env(name, fallback) {
  const value = process.env[name];
  return value === undefined || value === "" ? fallback : value;
}

function codeOf(diagnostic) {
  const code = diagnostic.code;
  return code !== null && typeof code === "object" ? String(code.value) : String(code);
}

function plainRange(range) {
  return {
    start: { line: range.start.line, character: range.start.character },
    end: { line: range.end.line, character: range.end.character },
  };
}

function plainDiagnostic(diagnostic) {
  return {
    code: codeOf(diagnostic),
    source: diagnostic.source,
    message: diagnostic.message,
    severity: diagnostic.severity,
    range: plainRange(diagnostic.range),
  };
}

function ours(uri) {
  return vscode.languages.getDiagnostics(uri).filter((d) => d.source === SOURCE);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function poll(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(100);
  }
}

function isQuickFix(action) {
  return action.kind !== undefined && vscode.CodeActionKind.QuickFix.contains(action.kind);
}

class Report {
  constructor(file) {
    this.file = file;
    this.started = Date.now();
    this.data = { done: false, steps: [], errors: [] };
  }

  step(name, extra) {
    this.data.steps.push({ name, t_ms: Date.now() - this.started });
    Object.assign(this.data, extra || {});
    this.write();
  }

  write() {
    // Write then rename, so a reader never sees half a file.
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.data, null, 2));
    fs.renameSync(tmp, this.file);
  }
}

// Notebook mode ($CKPT_E2E_NOTEBOOK): open the .ipynb as a notebook, wait for our diagnostic
// on the cell $CKPT_E2E_CELL (0-based among all cells), apply its preferred quick fix, save
// the notebook, and wait for the cell's diagnostics to clear.
async function driveNotebook(report, notebookPath) {
  const timeoutMs = Number(env("CKPT_E2E_TIMEOUT_MS", "60000"));
  const code = env("CKPT_E2E_CODE", "CKPT001");
  const cellIndex = Number(env("CKPT_E2E_CELL", "2"));
  report.step("activated", { vscode_version: vscode.version, notebook: notebookPath });
  const notebook = await vscode.workspace.openNotebookDocument(vscode.Uri.file(notebookPath));
  await vscode.window.showNotebookDocument(notebook);
  const cells = notebook.getCells();
  report.step("opened", {
    notebook_type: notebook.notebookType,
    cells: cells.map((c) => ({ kind: c.kind, language: c.document.languageId, uri: c.document.uri.toString() })),
  });
  const ext = vscode.extensions.getExtension(OUR_EXTENSION);
  report.step("our_extension", { our_extension_found: Boolean(ext) });
  const cell = cells[cellIndex].document;
  const target = await poll(
    () => ours(cell.uri).find((d) => codeOf(d) === code),
    timeoutMs,
    `a ${code} diagnostic from ${SOURCE} on cell ${cellIndex}`,
  );
  report.step("diagnostics", {
    our_extension_active: Boolean(ext && ext.isActive),
    diagnostics: ours(cell.uri).map(plainDiagnostic),
    other_cells: cells
      .filter((_, i) => i !== cellIndex)
      .map((c) => ours(c.document.uri).map(plainDiagnostic)),
    target: plainDiagnostic(target),
  });
  const actions =
    (await vscode.commands.executeCommand(
      "vscode.executeCodeActionProvider",
      cell.uri,
      target.range,
      vscode.CodeActionKind.QuickFix.value,
      20,
    )) || [];
  const fixes = actions.filter(isQuickFix);
  report.step("code_actions", {
    actions: actions.map((a) => ({ title: a.title, kind: a.kind ? a.kind.value : null, hasEdit: Boolean(a.edit) })),
  });
  const chosen = fixes.find((a) => a.isPreferred) || fixes[0];
  if (!chosen || !chosen.edit) {
    throw new Error(`no quick fix with an edit among ${actions.length} code actions`);
  }
  const edited = chosen.edit.entries().map(([uri]) => uri.toString());
  const before = cells.map((c) => c.document.getText());
  const applied = await vscode.workspace.applyEdit(chosen.edit);
  report.step("applied", {
    chosen: { title: chosen.title, kind: chosen.kind.value, isPreferred: Boolean(chosen.isPreferred) },
    applied,
    edited_uris: edited,
    changed_cells: cells.map((c, i) => c.document.getText() !== before[i]),
  });
  if (!applied) {
    throw new Error("workspace.applyEdit returned false");
  }
  const saved = await notebook.save();
  report.step("saved", { saved });
  const cleared = await poll(() => ours(cell.uri).length === 0, timeoutMs, "the cell's diagnostics to clear");
  report.step("cleared", { cleared, final_text: cell.getText() });
  if (env("CKPT_E2E_FIX_ON_SAVE", "")) {
    await fixOnSave(report, notebook, cell, before[cellIndex], code, timeoutMs);
  }
}

// notebook.codeActionsOnSave: put the cell back as it was, wait for the finding, save the
// notebook the way a user does (the save command, an explicit save), and wait for the
// save participant's fix-all to clear it.
async function fixOnSave(report, notebook, cell, original, code, timeoutMs) {
  const edit = new vscode.WorkspaceEdit();
  const whole = new vscode.Range(0, 0, cell.lineCount, 0);
  edit.replace(cell.uri, whole, original);
  await vscode.workspace.applyEdit(edit);
  await poll(() => ours(cell.uri).find((d) => codeOf(d) === code), timeoutMs, `${code} again`);
  report.step("reverted", { reverted_text: cell.getText() });
  await vscode.window.showNotebookDocument(notebook);
  await vscode.commands.executeCommand("workbench.action.files.save");
  const fixedOnSave = await poll(
    () => ours(cell.uri).length === 0 && cell.getText().includes("__getstate__"),
    timeoutMs,
    "notebook.codeActionsOnSave to fix the cell",
  );
  report.step("fixed_on_save", {
    fixed_on_save: fixedOnSave,
    dirty_after_save: notebook.isDirty,
    on_save_text: cell.getText(),
  });
}

async function drive(report) {
  const notebookPath = env("CKPT_E2E_NOTEBOOK", "");
  if (notebookPath) {
    return driveNotebook(report, notebookPath);
  }
  const timeoutMs = Number(env("CKPT_E2E_TIMEOUT_MS", "60000"));
  const code = env("CKPT_E2E_CODE", "CKPT005");
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  const modelPath = env(
    "CKPT_E2E_MODEL",
    folder ? path.join(folder.uri.fsPath, "model.py") : "",
  );
  if (!modelPath) {
    throw new Error("no workspace folder and no CKPT_E2E_MODEL");
  }
  const uri = vscode.Uri.file(modelPath);
  report.step("activated", {
    vscode_version: vscode.version,
    workspace: folder ? folder.uri.fsPath : null,
    model: modelPath,
    extensions: vscode.extensions.all
      .filter((e) => !e.packageJSON.isBuiltin)
      .map((e) => ({ id: e.id, version: e.packageJSON.version })),
  });

  const document = await vscode.workspace.openTextDocument(uri);
  await vscode.window.showTextDocument(document);
  report.step("opened", { language: document.languageId });

  const ext = vscode.extensions.getExtension(OUR_EXTENSION);
  report.step("our_extension", { our_extension_found: Boolean(ext) });

  const target = await poll(
    () => ours(uri).find((d) => codeOf(d) === code),
    timeoutMs,
    `a ${code} diagnostic from ${SOURCE}`,
  );
  report.step("diagnostics", {
    our_extension_active: Boolean(ext && ext.isActive),
    diagnostics: vscode.languages.getDiagnostics(uri).map(plainDiagnostic),
    target: plainDiagnostic(target),
  });

  // The last argument asks VS Code to resolve lazily computed edits of the first actions.
  const actions =
    (await vscode.commands.executeCommand(
      "vscode.executeCodeActionProvider",
      uri,
      target.range,
      vscode.CodeActionKind.QuickFix.value,
      20,
    )) || [];
  const fixes = actions.filter(isQuickFix);
  report.step("code_actions", {
    actions: actions.map((a) => ({
      title: a.title,
      kind: a.kind ? a.kind.value : null,
      isPreferred: Boolean(a.isPreferred),
      hasEdit: Boolean(a.edit),
      command: a.command ? a.command.command : null,
    })),
  });
  const chosen = fixes.find((a) => a.isPreferred) || fixes[0];
  if (!chosen) {
    throw new Error(`no quick fix among ${actions.length} code actions`);
  }
  if (!chosen.edit) {
    throw new Error(`the quick fix "${chosen.title}" has no edit`);
  }

  const applied = await vscode.workspace.applyEdit(chosen.edit);
  if (chosen.command) {
    await vscode.commands.executeCommand(chosen.command.command, ...(chosen.command.arguments || []));
  }
  report.step("applied", {
    chosen: { title: chosen.title, kind: chosen.kind.value, isPreferred: Boolean(chosen.isPreferred) },
    applied,
  });
  if (!applied) {
    throw new Error("workspace.applyEdit returned false");
  }

  const saved = await document.save();
  report.step("saved", { saved });

  const cleared = await poll(
    () => ours(uri).length === 0,
    timeoutMs,
    `the ${SOURCE} diagnostics to clear`,
  );
  report.step("cleared", {
    cleared,
    diagnostics_after: vscode.languages.getDiagnostics(uri).map(plainDiagnostic),
    final_text: document.getText(),
  });
}

function activate() {
  const file = process.env.CKPT_E2E_REPORT;
  if (!file) {
    return;
  }
  const report = new Report(file);
  // Not awaited: activation must return, the drive goes on in the background.
  drive(report)
    .catch((error) => {
      report.data.errors.push(String((error && error.stack) || error));
    })
    .finally(() => {
      report.data.done = true;
      report.step("done");
    });
}

function deactivate() {}

module.exports = { activate, deactivate };
