/**
 * Typed errors shared by all modules. Every error a user can cause (a bad file, a bad argument,
 * a full context) is a CmxError with a stable `code`, so the CLI and the server can print one
 * clear line instead of a stack trace.
 */
export class CmxError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "CmxError";
    this.code = code;
  }
}

/** A file (GGUF, safetensors, tokenizer.model, ...) that is malformed or truncated. */
export class FormatError extends CmxError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, message: string) {
    super("E_FORMAT", `${file}: ${field}: ${message}`);
    this.name = "FormatError";
    this.file = file;
    this.field = field;
  }
}

/** A tensor type this build cannot read. */
export class UnsupportedError extends CmxError {
  constructor(message: string) {
    super("E_UNSUPPORTED", message);
    this.name = "UnsupportedError";
  }
}

/** A tensor that is missing or has the wrong shape for the model's hyperparameters. */
export class ModelError extends CmxError {
  constructor(message: string) {
    super("E_MODEL", message);
    this.name = "ModelError";
  }
}

/** A bad command-line argument or request field. */
export class ArgumentError extends CmxError {
  constructor(message: string) {
    super("E_ARGUMENT", message);
    this.name = "ArgumentError";
  }
}

/** The prompt (plus what is asked to be generated) does not fit in the context. */
export class ContextFullError extends CmxError {
  constructor(message: string) {
    super("E_CONTEXT_FULL", message);
    this.name = "ContextFullError";
  }
}

/** Not enough memory (or another resource) for what was asked. */
export class ResourceError extends CmxError {
  constructor(message: string) {
    super("E_RESOURCE", message);
    this.name = "ResourceError";
  }
}

/** Training data that cannot be used (bad JSON, a record without the needed fields, an empty file). */
export class DataError extends CmxError {
  constructor(message: string) {
    super("E_DATA", message);
    this.name = "DataError";
  }
}
