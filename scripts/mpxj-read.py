"""Reads a project plan with MPXJ (a third-party reader of MS Project files)
and prints its tasks as JSON, so tests can check that a plan synchost wrote
opens elsewhere and shows the changes. Usage: mpxj-read.py PLAN.xml"""
import json
import sys

import jpype
import mpxj  # noqa: F401  (puts MPXJ's jars on the class path)

jpype.startJVM()
from org.mpxj import TimeUnit  # noqa: E402
from org.mpxj.reader import UniversalProjectReader  # noqa: E402

project = UniversalProjectReader().read(sys.argv[1])
properties = project.getProjectProperties()


def hours(duration):
    return None if duration is None else float(duration.convertUnits(TimeUnit.HOURS, properties).getDuration())


def text(value):
    return None if value is None else str(value)


tasks = []
for task in project.getTasks():
    if task.getUniqueID() == 0:
        continue
    parent = task.getParentTask()
    tasks.append({
        "uid": int(task.getUniqueID()),
        "id": int(task.getID()),
        "name": text(task.getName()),
        "outline_level": int(task.getOutlineLevel()),
        "parent": int(parent.getUniqueID()) if parent is not None and parent.getUniqueID() != 0 else None,
        "start": text(task.getStart()),
        "finish": text(task.getFinish()),
        "work": hours(task.getWork()),
        "actual_work": hours(task.getActualWork()),
        "remaining_work": hours(task.getRemainingWork()),
        "publish": bool(task.getFlag(1)),
        "type": text(task.getText(1)),
        "resources": [text(a.getResource().getName()) for a in task.getResourceAssignments() if a.getResource() is not None],
        "predecessors": [int(r.getPredecessorTask().getUniqueID()) for r in task.getPredecessors()],
    })
print(json.dumps({"tasks": tasks}))
jpype.shutdownJVM()
