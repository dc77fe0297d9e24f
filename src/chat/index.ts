export { MIXTRAL_INSTRUCT_TEMPLATE, mergeSystemMessages, renderChat, supportsSystemRole, type ChatMessage, type RenderChatOptions } from "./template.js";
export { StopMatcher, type StopPushResult } from "./stop.js";
