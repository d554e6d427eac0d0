"""``surfaces demo``: the whole product on one machine, in one trio program.

    surfaces demo [--once] [--state-dir DIR] [--keep] [--port N] [--locale ru|en] [--verbose]

What it does, printing a transcript as it goes:

1. starts a throwaway Synapse on ``127.0.0.1`` (``matrix_client.testing.LocalSynapse``), registers
   the bot (``@surfaces-bot:localhost``) and a demo user (``@demo:localhost``) with
   generated passwords;
2. starts the reference agent on a free loopback port, its workspace inside the state
   directory, and the bot (``BotApp``) configured from an environment dict, exactly as
   a container deployment would configure it;
3. plays a scripted conversation as the demo user (``MatrixClient``): DM + invite →
   Space and first chat appear → a streamed reply → ``!new`` → a file to the agent →
   a file back from the agent (downloaded and compared) → ``!chats``. Every step has a
   deadline and ends with ✓ or ✗;
4. unless ``--once``, stays up and prints how to log in with a real Matrix client
   (loopback only) until Ctrl-C, which stops the bot gracefully, then the agent, then
   Synapse. A second Ctrl-C skips the bot's grace period.

Exit codes: 0 when every step succeeded; 1 when a step failed (the transcript names
it); 130 when interrupted before the script finished.

State directory layout (a temporary directory, deleted at exit unless ``--keep`` or a
step failed; a given ``--state-dir`` is always kept and can be reused)::

    synapse/            homeserver database, media, logs (homeserver.log)
    bot/                the bot's SQLite state (SURFACES_STATE_DIR)
    workspace/          the reference agent's workspace (SURFACES_WORKSPACE_DIR)
    bot.log             the bot's, the agent's and the demo's logs (not with --verbose)
    credentials.json    generated passwords, so a reused state directory logs in again

On a reused state directory the previous demo user already has a workspace, so the
script uses a fresh one (``demo2``, ``demo3``…) to show the onboarding again.

The package's modules, each named for what it holds: ``_transcript`` (the readable
output), ``_observer`` (the demo user's background ``/sync``), ``_conversation``
(send, then recognise the bot's answers), ``_script`` (the steps, one function each,
in ``STEPS``), ``_credentials`` (generated passwords), ``_run`` (starting and
stopping everything) and ``_cli`` (the command line).
"""

from ._cli import main
from ._run import DemoOptions, run_demo

__all__ = ["DemoOptions", "main", "run_demo"]
