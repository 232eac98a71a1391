"""``medix-r1 app``: a Gradio app with three tabs over a runs folder.

- **Ask** (:mod:`~medix_r1.app.ask`): a policy answers an uploaded image (PNG, JPEG, DICOM) and question;
  the reply streams, then shows its modality tag, reasoning and answer as the shared parser reads them, and
  with a reference answer its composite reward.
- **Runs** (:mod:`~medix_r1.app.runs`): training curves and sampled completions; eval results and a sample
  browser with filters; two eval runs side by side.
- **Review**: a blind A/B review of two eval runs (:mod:`medix_r1.review`).

:mod:`~medix_r1.app.server` starts it safely (127.0.0.1 unless a login is set, files only from ``--runs``).
Importing this package does not import Gradio; :func:`medix_r1.app.ui.build_app` does.
"""
