/**
 * Access to the Python extension (ms-python.python), which is optional: ckpt-lsp works without it,
 * so it is looked up at run time and never declared as an extension dependency.
 */

import * as vscode from 'vscode';

import type { PythonExtensionApi } from './python';

export const PYTHON_EXTENSION_ID = 'ms-python.python';

interface PythonApiWithEvents extends PythonExtensionApi {
  environments?: PythonExtensionApi['environments'] & {
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
}

/** The Python extension's API, activating it first; undefined when it is not installed. */
export async function loadPythonApi(): Promise<PythonApiWithEvents | undefined> {
  const extension = vscode.extensions.getExtension<PythonApiWithEvents>(PYTHON_EXTENSION_ID);
  if (!extension) {
    return undefined;
  }
  if (!extension.isActive) {
    await extension.activate();
  }
  return extension.exports;
}

/** Subscribe to changes of the active Python environment; undefined when that is not possible. */
export async function onActiveEnvironmentChanged(
  listener: () => void,
): Promise<vscode.Disposable | undefined> {
  try {
    const api = await loadPythonApi();
    const event = api?.environments?.onDidChangeActiveEnvironmentPath;
    if (typeof event === 'function') {
      return event(() => listener());
    }
  } catch {
    // No Python extension events: the interpreter setting and "Restart Server" still work.
  }
  return undefined;
}
