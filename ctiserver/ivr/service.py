"""The IVR as one service for the server's wiring: trees with hot reload, TTS, the FastAGI handler.

    svc = IvrService(config_dir, emit=store.append, handoff=handoff_to(acd_runtime),
                     data=SqlDataProvider(store.engine))
    await svc.start()            # ConfigError if a tree is bad at start-up
    agi_routes["ivr"] = svc.handle
    ...
    await svc.stop()

`start` loads and checks every tree (against the ACD's skills and tiers), reloads on
SIGHUP and every `reload_poll_s`, and renders each tree version's static prompts in the
background (`ctiserver tts build` does the same ahead of time), so the first caller
never waits for synthesis of a fixed prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from ..agi.channel import AgiChannel
from ..calendar import Calendar
from ..clock import Clock
from ..customers.data import DataProvider
from ..lifecycle import TaskOwner
from .reload import TreeRegistry
from .runtime import Emit, Handoff, IvrRuntime
from .settings import load_ivr_settings
from .tools import acd_names, sound_dirs_for, static_prompts
from .tree import LoadedTree
from .tts import Tts

log = logging.getLogger(__name__)


class IvrService:
    def __init__(self, config_dir: str | Path, *, emit: Emit, handoff: Handoff, data: DataProvider,
                 project_dir: str | Path | None = None, clock: Clock | None = None,
                 calendar: Calendar | None = None) -> None:
        self.config_dir = Path(config_dir)
        self.settings = load_ivr_settings(self.config_dir, calendar)
        project = Path(project_dir) if project_dir else self.config_dir.resolve().parent
        self.tts = Tts.from_settings(self.settings.tts, project)
        skills, tiers = acd_names(self.config_dir)
        self.registry = TreeRegistry(self.config_dir, sound_dirs_for(self.config_dir, self.settings), skills, tiers,
                                     hours=self.settings.calendar.hours,
                                     on_loaded=self._prerender)
        self.runtime = IvrRuntime(self.registry, data, self.tts, emit, handoff, self.settings, clock)
        self._tasks = TaskOwner("IVR")  # the reloader; each tree version's prompt renders
        self._renders: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.registry.load()
        self.registry.install_sighup()
        self._tasks.spawn(self.registry.run(self.settings.reload_poll_s), name="ivr-reload")

    async def handle(self, chan: AgiChannel) -> None:
        await self.runtime.handle(chan)

    def _prerender(self, lt: LoadedTree) -> None:
        async def render() -> None:
            rendered, cached, errors = await self.tts.render_all(static_prompts(lt, list(self.settings.tts.voices)))
            log.info("IVR tree %s v%s: %d prompt(s) rendered, %d cached", lt.name, lt.version, rendered, cached)
            for e in errors:
                log.error("IVR tree %s: prompt not rendered: %s", lt.name, e)

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no running loop (a synchronous load): `tts build` covers it
            return
        if self._tasks.closing:
            return
        # a render that raises is logged by the owner (callers then wait for synthesis of that prompt)
        task = self._tasks.spawn(render(), name=f"ivr-prerender-{lt.name}")
        self._renders.add(task)
        task.add_done_callback(self._renders.discard)

    async def wait_prerendered(self) -> None:
        """Until the background renders started so far are done (tests, `serve --warm`)."""
        while self._renders:
            await asyncio.wait(list(self._renders))

    async def stop(self) -> None:
        await self._tasks.aclose()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            import signal

            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self.tts.close()
