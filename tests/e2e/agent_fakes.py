"""A scripted LLM and TTS for the real livekit-agents stack: no network, replies chosen by text.

The frontend user types a line (livekit-agents' `lk.chat` text input); `ScriptedLLM` answers it
from `REPLIES` with words to speak or a tool to call. `ScriptedTTS` turns any text into a tone
of a length that follows the text, and fails on purpose when the text names a failure:
`TTS_FATAL` fails every attempt with a non-retryable error (one unrecoverable `TTSError`),
`TTS_FLAKY` fails the first attempt of a stream with a retryable one (a recoverable `TTSError`,
then the retry speaks).
"""

from __future__ import annotations

import array
import math
import uuid
from typing import Any

from livekit.agents import APIConnectOptions, APIError, llm, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

SAMPLE_RATE = 24_000
SECONDS_PER_CHARACTER = 0.03
TTS_FATAL = "tts-fatal"
TTS_FLAKY = "tts-flaky"

# what the user types -> (words the agent says, tool the agent calls)
REPLIES: dict[str, tuple[str, str | None]] = {
    "hello": ("Hello, nice to see you.", None),
    "fail": (f"{TTS_FATAL} this reply cannot be spoken.", None),
    "flaky": (f"{TTS_FLAKY} this reply is spoken on the second try.", None),
    "bye": ("", "end_call"),
    "close avatar": ("", "close_avatar_and_end"),
    "swap avatar": ("", "swap_avatar"),
}
# what a tool returned -> what the agent says next
AFTER_TOOL = "Goodbye, have a nice day."


class ScriptedLLM(llm.LLM):
    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
             parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
             tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
             extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN) -> llm.LLMStream:
        return _ScriptedStream(self, chat_ctx=chat_ctx, tools=tools or [],
                               conn_options=conn_options)


class _ScriptedStream(llm.LLMStream):
    async def _run(self) -> None:
        last = self.chat_ctx.items[-1]
        if last.type == "function_call_output":
            words, tool = AFTER_TOOL, None
        elif last.type == "message" and last.role == "user":
            words, tool = REPLIES.get((last.text_content or "").strip().lower(), ("", None))
        else:
            return
        chunk_id = uuid.uuid4().hex
        if words:
            self._event_ch.send_nowait(llm.ChatChunk(
                id=chunk_id, delta=llm.ChoiceDelta(role="assistant", content=words)))
        if tool:
            call = llm.FunctionToolCall(name=tool, arguments="{}",
                                        call_id=f"call_{uuid.uuid4().hex[:8]}")
            self._event_ch.send_nowait(llm.ChatChunk(
                id=chunk_id, delta=llm.ChoiceDelta(role="assistant", tool_calls=[call])))


class ScriptedTTS(tts.TTS):
    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=True),
                         sample_rate=SAMPLE_RATE, num_channels=1)

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
                   ) -> tts.ChunkedStream:
        raise NotImplementedError("ScriptedTTS streams only")

    def stream(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
               ) -> tts.SynthesizeStream:
        return _ScriptedSynthesis(tts=self, conn_options=conn_options)


class _ScriptedSynthesis(tts.SynthesizeStream):
    def __init__(self, *, tts: ScriptedTTS, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, conn_options=conn_options)
        self._attempts = 0

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        self._attempts += 1
        output_emitter.initialize(request_id=utils.shortuuid("scripted_"),
                                  sample_rate=SAMPLE_RATE, num_channels=1,
                                  mime_type="audio/pcm", stream=True)
        text = ""
        async for data in self._input_ch:
            if isinstance(data, str):
                text += data
                continue
            if not text.strip():
                continue
            if TTS_FATAL in text:
                raise APIError("scripted TTS outage", retryable=False)
            if TTS_FLAKY in text and self._attempts == 1:
                raise APIError("scripted TTS hiccup", retryable=True)
            self._mark_started()
            output_emitter.start_segment(segment_id=utils.shortuuid("segment_"))
            output_emitter.push(tone(len(text) * SECONDS_PER_CHARACTER))
            output_emitter.flush()
            text = ""


def tone(seconds: float, hz: float = 220.0) -> bytes:
    """A sine tone as 16-bit PCM at SAMPLE_RATE."""
    return array.array("h", (int(6000 * math.sin(2 * math.pi * hz * i / SAMPLE_RATE))
                             for i in range(int(seconds * SAMPLE_RATE)))).tobytes()
