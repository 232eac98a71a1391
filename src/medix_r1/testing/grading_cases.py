"""Hand-labelled grading cases (question, reference, prediction, label) written for this project.

Used to exercise judges in tests and to measure small local judges (docs/rewards.md). ``label`` is 1 when
the prediction means the same as the reference. Half the NO cases are the ones sentence embeddings get
wrong (other side, negation, a near-synonym of a different disease).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GradingCase:
    question: str
    reference: str
    prediction: str
    label: int


GRADING_CASES: tuple[GradingCase, ...] = (
    GradingCase("Which organ contains the mass?", "Spleen", "The mass lies in the spleen.", 1),
    GradingCase("Which organ contains the mass?", "Spleen", "Pancreatic tail", 0),
    GradingCase("What abnormality is seen in the chest?", "Pneumothorax", "Collapsed lung with air in the "
                "pleural space", 1),
    GradingCase("What abnormality is seen in the chest?", "Pneumothorax", "Pleural effusion", 0),
    GradingCase("Which side is the effusion on?", "Right", "right-sided", 1),
    GradingCase("Which side is the effusion on?", "Right", "Left side", 0),
    GradingCase("Is the heart enlarged?", "Yes", "Yes, there is cardiomegaly", 1),
    GradingCase("Is the heart enlarged?", "Yes", "No, the cardiac silhouette is normal", 0),
    GradingCase("Is there free air under the diaphragm?", "No", "No free air is seen", 1),
    GradingCase("Is there free air under the diaphragm?", "No", "Yes", 0),
    GradingCase("What imaging modality was used?", "Computed tomography", "CT scan", 1),
    GradingCase("What imaging modality was used?", "Computed tomography", "Magnetic resonance imaging", 0),
    GradingCase("What is the most likely diagnosis?", "Acute appendicitis", "Inflamed appendix (appendicitis)", 1),
    GradingCase("What is the most likely diagnosis?", "Acute appendicitis", "Acute cholecystitis", 0),
    GradingCase("Which bone is fractured?", "Femur", "The thigh bone (femoral shaft)", 1),
    GradingCase("Which bone is fractured?", "Femur", "Tibia", 0),
    GradingCase("What does the lesion represent?", "Renal cell carcinoma", "A kidney cancer, renal cell type", 1),
    GradingCase("What does the lesion represent?", "Renal cell carcinoma", "Simple renal cyst", 0),
    GradingCase("What is the finding in the brain?", "Ischemic stroke", "Infarct from arterial occlusion", 1),
    GradingCase("What is the finding in the brain?", "Ischemic stroke", "Hemorrhagic stroke", 0),
    GradingCase("How many kidneys are visible?", "Two", "2", 1),
    GradingCase("How many kidneys are visible?", "Two", "One", 0),
    GradingCase("What stain was used?", "Hematoxylin and eosin", "H&E", 1),
    GradingCase("What stain was used?", "Hematoxylin and eosin", "Periodic acid-Schiff", 0),
)
