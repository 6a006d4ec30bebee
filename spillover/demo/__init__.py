"""The demo app that ``spillover up`` deploys unless given ``--app``: ``app.py`` (handler
``spillover.demo.app:Model``) and its ``spillover.toml``, shipped in the package so it runs from
any directory. Its ``predict`` needs torch: ``pip install 'spillover[model]'``."""
